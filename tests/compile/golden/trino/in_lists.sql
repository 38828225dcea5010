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
    JSON_EXTRACT("doc", '$["resource"]["instanceDetails"]["instanceId"]') AS "_mw_p0",
    JSON_EXTRACT("doc", '$["service"]["count"]') AS "_mw_p1"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SUBSTR(JSON_FORMAT("_mw_p0"), 1, 1) = '"'
      THEN CAST("_mw_p0" AS VARCHAR)
    END AS "_mw_p0_s",
    CASE
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p1"), '^-?[0-9]')
      THEN CAST("_mw_p1" AS DOUBLE)
    END AS "_mw_p1_n"
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
  (
    "_mw_p0_s" IN ('i-1', 'i-2') AND NOT "type" IN ('a', 'b')
  )
  AND "_mw_p1_n" IN (CAST(1.0 AS DOUBLE), CAST(2.5 AS DOUBLE))
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
