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
    JSON_EXTRACT("doc", '$["resource"]["instanceDetails"]["imageId"]') AS "_mw_p1",
    JSON_EXTRACT(
      "doc",
      '$["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]["ipAddressV4"]'
    ) AS "_mw_p2",
    JSON_EXTRACT(
      "doc",
      '$["service"]["action"]["networkConnectionAction"]["remotePortDetails"]["port"]'
    ) AS "_mw_p3",
    JSON_EXTRACT("doc", '$["resource"]["instanceDetails"]["tags"]') AS "_mw_p4"
  FROM "cloud_aws_guardduty"
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SUBSTR(JSON_FORMAT("_mw_p0"), 1, 1) = '"'
      THEN CAST("_mw_p0" AS VARCHAR)
    END AS "_mw_p0_s",
    CASE
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p0"), '^-?[0-9]')
      THEN CAST("_mw_p0" AS DOUBLE)
    END AS "_mw_p0_n",
    CASE
      WHEN JSON_FORMAT("_mw_p0") IN ('true', 'false')
      THEN CAST("_mw_p0" AS BOOLEAN)
    END AS "_mw_p0_b"
  FROM _mw_src
), _mw_base AS (
  SELECT
    "eventdate" AS "_mw_t",
    "id" AS "_mw_id",
    "accountid" AS "_mw_g0",
    "accountid" AS "_mw_k0",
    CASE
      WHEN SUBSTR(JSON_FORMAT("_mw_p0"), 1, 1) = '"'
      THEN 's:' || "_mw_p0_s"
      WHEN REGEXP_LIKE(JSON_FORMAT("_mw_p0"), '^-?[0-9]')
      THEN 'n:' || CAST("_mw_p0_n" + CAST(0.0 AS DOUBLE) AS VARCHAR)
      WHEN JSON_FORMAT("_mw_p0") IN ('true', 'false')
      THEN 'b:' || CAST("_mw_p0_b" AS VARCHAR)
      WHEN SUBSTR(JSON_FORMAT("_mw_p0"), 1, 1) IN ('{', '[')
      THEN 'j:' || JSON_FORMAT("_mw_p0")
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
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s0" END) AS "eventdate",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s1" END) AS "accountid",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s2" END) AS "region",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s3" END) AS "instance_id",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s4" END) AS "ami_id",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s5" END) AS "type",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s6" END) AS "title",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s7" END) AS "description",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s8" END) AS "severity",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s9" END) AS "mining_pool_ip",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s10" END) AS "mining_port",
  ARBITRARY(CASE WHEN "_mw_rn_last" = 1 THEN "_mw_s11" END) AS "tags",
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
  ARBITRARY(CASE WHEN "_mw_rn_first" = 1 THEN "_mw_id" END) ASC NULLS FIRST
