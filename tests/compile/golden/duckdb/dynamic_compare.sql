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
    JSON_EXTRACT("doc", '$."service"."count"') AS "_mw_p0",
    JSON_EXTRACT("doc", '$."service"."action"."networkConnectionAction"."remotePortDetails"."port"') AS "_mw_p1"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN JSON_TYPE("_mw_p0") = 'VARCHAR'
      THEN JSON_EXTRACT_STRING("_mw_p0", '$')
    END AS "_mw_p0_s",
    CASE
      WHEN JSON_TYPE("_mw_p1") = 'VARCHAR'
      THEN JSON_EXTRACT_STRING("_mw_p1", '$')
    END AS "_mw_p1_s",
    CASE
      WHEN JSON_TYPE("_mw_p0") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n",
    CASE
      WHEN JSON_TYPE("_mw_p1") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
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
