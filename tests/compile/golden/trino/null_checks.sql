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
    JSON_EXTRACT("doc", '$["service"]["action"]') AS "_mw_p0"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    "_mw_p0" IS NULL OR JSON_FORMAT("_mw_p0") = 'null' AS "_mw_p0_z"
  FROM _mw_src
)
SELECT
  "eventdate" AS "eventdate",
  "accountid" AS "accountid",
  "region" AS "region",
  "type" AS "type",
  "title" AS "title",
  "description" AS "description",
  "severity" AS "severity",
  "id" AS "id",
  "arn" AS "arn"
FROM _mw_rows
WHERE
  NOT "_mw_p0_z" AND "region" IS NULL
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
