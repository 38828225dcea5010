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
    JSON_EXTRACT("doc", '$."resource"."instanceDetails"."instanceId"') AS "_mw_p0",
    JSON_EXTRACT("doc", '$."resource"."instanceDetails"."imageId"') AS "_mw_p1",
    JSON_EXTRACT(
      "doc",
      '$."service"."action"."networkConnectionAction"."remoteIpDetails"."ipAddressV4"'
    ) AS "_mw_p2",
    JSON_EXTRACT("doc", '$."service"."action"."networkConnectionAction"."remotePortDetails"."port"') AS "_mw_p3",
    JSON_EXTRACT("doc", '$."resource"."instanceDetails"."tags"') AS "_mw_p4"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN JSON_TYPE("_mw_p0") = 'VARCHAR'
      THEN JSON_EXTRACT_STRING("_mw_p0", '$')
    END AS "_mw_p0_s",
    CASE
      WHEN JSON_TYPE("_mw_p0") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n",
    CASE WHEN JSON_TYPE("_mw_p0") = 'BOOLEAN' THEN CAST("_mw_p0" AS BOOLEAN) END AS "_mw_p0_b"
  FROM _mw_src
), _mw_base AS (
  SELECT
    "eventdate" AS "_mw_t",
    "id" AS "_mw_id",
    "accountid" AS "_mw_g0",
    "accountid" AS "_mw_k0",
    CASE
      WHEN JSON_TYPE("_mw_p0") = 'VARCHAR'
      THEN 's:' || "_mw_p0_s"
      WHEN JSON_TYPE("_mw_p0") IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
      THEN 'n:' || CAST("_mw_p0_n" + CAST(0.0 AS DOUBLE) AS TEXT)
      WHEN JSON_TYPE("_mw_p0") = 'BOOLEAN'
      THEN 'b:' || CAST("_mw_p0_b" AS TEXT)
      WHEN JSON_TYPE("_mw_p0") IN ('OBJECT', 'ARRAY')
      THEN 'j:' || CAST("_mw_p0" AS TEXT)
    END AS "_mw_g1",
    "_mw_p0" AS "_mw_k1",
    "type" AS "_mw_g2",
    "type" AS "_mw_k2",
    "eventdate" AS "_mw_s0",
    "accountid" AS "_mw_s1",
    "region" AS "_mw_s2",
    "_mw_p0" AS "_mw_s3",
    "_mw_p1" AS "_mw_s4",
    "type" AS "_mw_s5",
    "title" AS "_mw_s6",
    "description" AS "_mw_s7",
    "severity" AS "_mw_s8",
    "_mw_p2" AS "_mw_s9",
    "_mw_p3" AS "_mw_s10",
    "_mw_p4" AS "_mw_s11"
  FROM _mw_rows
  WHERE
    (
      "type" LIKE '%CryptoCurrency%' ESCAPE '\'
      OR "type" = 'CryptoCurrency:EC2/BitcoinTool.B!DNS'
    )
    OR (
      "type" = 'CryptoCurrency:EC2/BitcoinTool.B' AND "severity" >= CAST(7.0 AS DOUBLE)
    )
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY "_mw_g0", "_mw_g1", "_mw_g2" ORDER BY "_mw_t" DESC, "_mw_id" DESC) AS "_mw_rn_last",
    ROW_NUMBER() OVER (
      PARTITION BY "_mw_g0", "_mw_g1", "_mw_g2"
      ORDER BY "_mw_t" ASC NULLS FIRST, "_mw_id" ASC NULLS FIRST
    ) AS "_mw_rn_first"
  FROM _mw_base
)
SELECT
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s0" END) AS "eventdate",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s1" END) AS "accountid",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s2" END) AS "region",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s3" END) AS "instance_id",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s4" END) AS "ami_id",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s5" END) AS "type",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s6" END) AS "title",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s7" END) AS "description",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s8" END) AS "severity",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s9" END) AS "mining_pool_ip",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s10" END) AS "mining_port",
  ANY_VALUE(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s11" END) AS "tags",
  COUNT(*) AS "count",
  MIN("_mw_t") AS "first_seen",
  MAX("_mw_t") AS "last_seen"
FROM _mw_ranked
GROUP BY
  "_mw_g0",
  "_mw_g1",
  "_mw_g2"
ORDER BY
  MIN("_mw_t") ASC NULLS FIRST,
  ANY_VALUE(CASE WHEN "_mw_rn_first" = 1 THEN "_mw_id" END) ASC NULLS FIRST
