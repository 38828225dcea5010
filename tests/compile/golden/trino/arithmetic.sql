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
    JSON_EXTRACT("doc", '$["service"]["count"]') AS "_mw_p0"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p0"), '^-?[0-9]')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n"
  FROM _mw_src
)
SELECT
  "id" AS "id",
  CASE
    WHEN IS_FINITE((
      "severity" * CAST(2.0 AS DOUBLE)
    ) + CAST(1.0 AS DOUBLE))
    THEN (
      "severity" * CAST(2.0 AS DOUBLE)
    ) + CAST(1.0 AS DOUBLE)
  END AS "s",
  CASE
    WHEN IS_FINITE(CAST("_mw_p0_n" AS DOUBLE) / NULLIF(CAST(0.0 AS DOUBLE), CAST(0.0 AS DOUBLE)))
    THEN CAST("_mw_p0_n" AS DOUBLE) / NULLIF(CAST(0.0 AS DOUBLE), CAST(0.0 AS DOUBLE))
  END AS "z"
FROM _mw_rows
ORDER BY
  "eventdate" ASC NULLS FIRST,
  "id" ASC NULLS FIRST
