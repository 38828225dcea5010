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
    JSON_EXTRACT("doc", '$["service"]["count"]') AS "_mw_p0",
    JSON_EXTRACT(
      "doc",
      '$["service"]["action"]["networkConnectionAction"]["remotePortDetails"]["port"]'
    ) AS "_mw_p1"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SUBSTR(JSON_FORMAT("_mw_p0"), 1, 1) = '"'
      THEN CAST("_mw_p0" AS VARCHAR)
    END AS "_mw_p0_s",
    CASE
      WHEN SUBSTR(JSON_FORMAT("_mw_p1"), 1, 1) = '"'
      THEN CAST("_mw_p1" AS VARCHAR)
    END AS "_mw_p1_s",
    CASE
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p0"), '^-?[0-9]')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n",
    CASE
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p1"), '^-?[0-9]')
      THEN CAST("_mw_p1" AS DOUBLE)
    END AS "_mw_p1_n"
  FROM _mw_src
)
SELECT
  "id" AS "id"
FROM _mw_rows
WHERE
  CASE
    WHEN NOT "_mw_p0_s" IS NULL AND NOT "_mw_p1_s" IS NULL
    THEN "_mw_p0_s" > "_mw_p1_s"
    WHEN NOT "_mw_p0_n" IS NULL AND NOT "_mw_p1_n" IS NULL
    THEN "_mw_p0_n" > "_mw_p1_n"
  END
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
