WITH _mw_src AS (
  SELECT
    "eventdate",
    "accountid",
    "region",
    "type",
    "title",
    "description",
    "severity",
    "id",
    "arn",
    JSON_EXTRACT("doc", '$["resource"]["instanceDetails"]["instanceId"]') AS "_mw_p0"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    "_mw_p0" IS NULL OR JSON_FORMAT("_mw_p0") = 'null' AS "_mw_p0_z"
  FROM _mw_src
)
SELECT
  LOWER("type") AS "lt",
  UPPER("region") AS "ur",
  LENGTH("title") AS "n",
  COALESCE(
    CASE WHEN NOT "_mw_p0_z" THEN "_mw_p0" END,
    CAST("region" AS JSON),
    CAST('none' AS JSON)
  ) AS "who"
FROM _mw_rows
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
