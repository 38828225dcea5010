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
    JSON_EXTRACT("doc", '$."service"."archived"') AS "_mw_p0",
    JSON_EXTRACT("doc", '$."service"."additionalInfo"."sample"') AS "_mw_p1"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE WHEN JSON_TYPE("_mw_p0") = 'BOOLEAN' THEN CAST("_mw_p0" AS BOOLEAN) END AS "_mw_p0_b",
    CASE WHEN JSON_TYPE("_mw_p1") = 'BOOLEAN' THEN CAST("_mw_p1" AS BOOLEAN) END AS "_mw_p1_b"
  FROM _mw_src
)
SELECT
  "id" AS "id"
FROM _mw_rows
WHERE
  "_mw_p0_b" OR "_mw_p1_b"
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
