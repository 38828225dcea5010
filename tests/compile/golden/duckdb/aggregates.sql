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
    JSON_EXTRACT("doc", '$."resource"."instanceDetails"."instanceId"') AS "_mw_p1"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    "_mw_p0" IS NULL OR JSON_TYPE("_mw_p0") = 'NULL' AS "_mw_p0_z",
    CASE
      WHEN JSON_TYPE("_mw_p0") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n",
    CASE
      WHEN JSON_TYPE("_mw_p1") = 'VARCHAR'
      THEN JSON_EXTRACT_STRING("_mw_p1", '$')
    END AS "_mw_p1_s",
    CASE
      WHEN JSON_TYPE("_mw_p1") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN CAST("_mw_p1" AS DOUBLE)
    END AS "_mw_p1_n",
    CASE WHEN JSON_TYPE("_mw_p1") = 'BOOLEAN' THEN CAST("_mw_p1" AS BOOLEAN) END AS "_mw_p1_b"
  FROM _mw_src
), _mw_base AS (
  SELECT
    "eventdate" AS "_mw_t",
    "id" AS "_mw_id",
    "accountid" AS "_mw_g0",
    "accountid" AS "_mw_k0",
    CASE WHEN NOT "_mw_p0_z" THEN 1 END AS "_mw_a1",
    "severity" AS "_mw_a2",
    "eventdate" AS "_mw_a3",
    "_mw_p0_n" AS "_mw_a4",
    "severity" AS "_mw_a5",
    "type" AS "_mw_a6",
    "type" AS "_mw_a7",
    CASE
      WHEN JSON_TYPE("_mw_p1") = 'VARCHAR'
      THEN 's:' || "_mw_p1_s"
      WHEN JSON_TYPE("_mw_p1") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN 'n:' || CAST("_mw_p1_n" + CAST(0.0 AS DOUBLE) AS TEXT)
      WHEN JSON_TYPE("_mw_p1") = 'BOOLEAN'
      THEN 'b:' || CAST("_mw_p1_b" AS TEXT)
      WHEN JSON_TYPE("_mw_p1") IN ('OBJECT', 'ARRAY')
      THEN 'j:' || CAST("_mw_p1" AS TEXT)
    END AS "_mw_a8"
  FROM _mw_rows
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY "_mw_g0" ORDER BY "_mw_t" DESC, "_mw_id" DESC) AS "_mw_rn_last",
    ROW_NUMBER() OVER (PARTITION BY "_mw_g0" ORDER BY "_mw_t" ASC NULLS FIRST, "_mw_id" ASC NULLS FIRST) AS "_mw_rn_first"
  FROM _mw_base
)
SELECT
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_k0" END) AS "accountid",
  COUNT(*) AS "count",
  COUNT("_mw_a1") AS "c",
  MIN("_mw_a2") AS "mn",
  MAX("_mw_a3") AS "mx",
  SUM("_mw_a4") AS "s",
  AVG("_mw_a5") AS "a",
  ANY_VALUE(CASE WHEN "_mw_rn_first" = 1 THEN "_mw_a6" END) AS "f",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_a7" END) AS "l",
  COUNT(DISTINCT "_mw_a8") AS "d",
  MIN("_mw_t") AS "first_seen",
  MAX("_mw_t") AS "last_seen"
FROM _mw_ranked
GROUP BY
  "_mw_g0"
ORDER BY
  MIN("_mw_t") ASC NULLS FIRST,
  ANY_VALUE(CASE WHEN "_mw_rn_first" = 1 THEN "_mw_id" END) ASC NULLS FIRST
