WITH _mw_src AS (
  SELECT
    `eventdate`,
    `accountid`,
    `region`,
    `type`,
    `title`,
    `description`,
    `severity`,
    `id`,
    `arn`,
    VARIANT_GET(`doc`, '$[\'resource\'][\'instanceDetails\'][\'instanceId\']', 'variant') AS `_mw_p0`,
    VARIANT_GET(`doc`, '$[\'resource\'][\'instanceDetails\'][\'imageId\']', 'variant') AS `_mw_p1`,
    VARIANT_GET(
      `doc`,
      '$[\'service\'][\'action\'][\'networkConnectionAction\'][\'remoteIpDetails\'][\'ipAddressV4\']',
      'variant'
    ) AS `_mw_p2`,
    VARIANT_GET(
      `doc`,
      '$[\'service\'][\'action\'][\'networkConnectionAction\'][\'remotePortDetails\'][\'port\']',
      'variant'
    ) AS `_mw_p3`,
    VARIANT_GET(`doc`, '$[\'resource\'][\'instanceDetails\'][\'tags\']', 'variant') AS `_mw_p4`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'STRING'
      THEN VARIANT_GET(`_mw_p0`, '$', 'string')
    END AS `_mw_p0_s`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p0`, '$', 'double')
    END AS `_mw_p0_n`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'BOOLEAN'
      THEN VARIANT_GET(`_mw_p0`, '$', 'boolean')
    END AS `_mw_p0_b`
  FROM _mw_src
), _mw_base AS (
  SELECT
    `eventdate` AS `_mw_t`,
    `id` AS `_mw_id`,
    `accountid` AS `_mw_g0`,
    `accountid` AS `_mw_k0`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'STRING'
      THEN 's:' || `_mw_p0_s`
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'DECIMAL%'
      THEN 'n:' || CAST(`_mw_p0_n` + CAST(0.0 AS DOUBLE) AS STRING)
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'BOOLEAN'
      THEN 'b:' || CAST(`_mw_p0_b` AS STRING)
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'OBJECT%'
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'ARRAY%'
      THEN 'j:' || TO_JSON(`_mw_p0`)
    END AS `_mw_g1`,
    `_mw_p0` AS `_mw_k1`,
    `type` AS `_mw_g2`,
    `type` AS `_mw_k2`,
    `eventdate` AS `_mw_s0`,
    `accountid` AS `_mw_s1`,
    `region` AS `_mw_s2`,
    `_mw_p0` AS `_mw_s3`,
    `_mw_p1` AS `_mw_s4`,
    `type` AS `_mw_s5`,
    `title` AS `_mw_s6`,
    `description` AS `_mw_s7`,
    `severity` AS `_mw_s8`,
    `_mw_p2` AS `_mw_s9`,
    `_mw_p3` AS `_mw_s10`,
    `_mw_p4` AS `_mw_s11`
  FROM _mw_rows
  WHERE
    (
      `type` LIKE '%CryptoCurrency%' ESCAPE '\\'
      OR `type` = 'CryptoCurrency:EC2/BitcoinTool.B!DNS'
    )
    OR (
      `type` = 'CryptoCurrency:EC2/BitcoinTool.B' AND `severity` >= CAST(7.0 AS DOUBLE)
    )
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY `_mw_g0`, `_mw_g1`, `_mw_g2` ORDER BY `_mw_t` DESC, `_mw_id` DESC) AS `_mw_rn_last`,
    ROW_NUMBER() OVER (PARTITION BY `_mw_g0`, `_mw_g1`, `_mw_g2` ORDER BY `_mw_t` ASC, `_mw_id` ASC) AS `_mw_rn_first`
  FROM _mw_base
)
SELECT
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s0` END) IGNORE NULLS AS `eventdate`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s1` END) IGNORE NULLS AS `accountid`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s2` END) IGNORE NULLS AS `region`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s3` END) IGNORE NULLS AS `instance_id`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s4` END) IGNORE NULLS AS `ami_id`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s5` END) IGNORE NULLS AS `type`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s6` END) IGNORE NULLS AS `title`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s7` END) IGNORE NULLS AS `description`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s8` END) IGNORE NULLS AS `severity`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s9` END) IGNORE NULLS AS `mining_pool_ip`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s10` END) IGNORE NULLS AS `mining_port`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s11` END) IGNORE NULLS AS `tags`,
  COUNT(*) AS `count`,
  MIN(`_mw_t`) AS `first_seen`,
  MAX(`_mw_t`) AS `last_seen`
FROM _mw_ranked
GROUP BY
  `_mw_g0`,
  `_mw_g1`,
  `_mw_g2`
ORDER BY
  MIN(`_mw_t`) ASC,
  ANY_VALUE(CASE WHEN `_mw_rn_first` = 1 THEN `_mw_id` END) IGNORE NULLS ASC
