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
    VARIANT_GET(`doc`, '$[\'service\'][\'count\']', 'variant') AS `_mw_p0`,
    VARIANT_GET(`doc`, '$[\'resource\'][\'instanceDetails\'][\'instanceId\']', 'variant') AS `_mw_p1`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    `_mw_p0` IS NULL OR SCHEMA_OF_VARIANT(`_mw_p0`) = 'VOID' AS `_mw_p0_z`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p0`, '$', 'double')
    END AS `_mw_p0_n`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'STRING'
      THEN VARIANT_GET(`_mw_p1`, '$', 'string')
    END AS `_mw_p1_s`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p1`, '$', 'double')
    END AS `_mw_p1_n`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'BOOLEAN'
      THEN VARIANT_GET(`_mw_p1`, '$', 'boolean')
    END AS `_mw_p1_b`
  FROM _mw_src
), _mw_base AS (
  SELECT
    `eventdate` AS `_mw_t`,
    `id` AS `_mw_id`,
    `accountid` AS `_mw_g0`,
    `accountid` AS `_mw_k0`,
    CASE WHEN NOT `_mw_p0_z` THEN 1 END AS `_mw_a1`,
    `severity` AS `_mw_a2`,
    `eventdate` AS `_mw_a3`,
    `_mw_p0_n` AS `_mw_a4`,
    `severity` AS `_mw_a5`,
    `type` AS `_mw_a6`,
    `type` AS `_mw_a7`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'STRING'
      THEN 's:' || `_mw_p1_s`
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'DECIMAL%'
      THEN 'n:' || CAST(`_mw_p1_n` + CAST(0.0 AS DOUBLE) AS STRING)
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'BOOLEAN'
      THEN 'b:' || CAST(`_mw_p1_b` AS STRING)
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'OBJECT%'
      OR SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'ARRAY%'
      THEN 'j:' || TO_JSON(`_mw_p1`)
    END AS `_mw_a8`
  FROM _mw_rows
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY `_mw_g0` ORDER BY `_mw_t` DESC, `_mw_id` DESC) AS `_mw_rn_last`,
    ROW_NUMBER() OVER (PARTITION BY `_mw_g0` ORDER BY `_mw_t` ASC, `_mw_id` ASC) AS `_mw_rn_first`
  FROM _mw_base
)
SELECT
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_k0` END) IGNORE NULLS AS `accountid`,
  COUNT(*) AS `count`,
  COUNT(`_mw_a1`) AS `c`,
  MIN(`_mw_a2`) AS `mn`,
  MAX(`_mw_a3`) AS `mx`,
  SUM(`_mw_a4`) AS `s`,
  AVG(`_mw_a5`) AS `a`,
  ANY_VALUE(CASE WHEN `_mw_rn_first` = 1 THEN `_mw_a6` END) IGNORE NULLS AS `f`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_a7` END) IGNORE NULLS AS `l`,
  COUNT(DISTINCT `_mw_a8`) AS `d`,
  MIN(`_mw_t`) AS `first_seen`,
  MAX(`_mw_t`) AS `last_seen`
FROM _mw_ranked
GROUP BY
  `_mw_g0`
ORDER BY
  MIN(`_mw_t`) ASC,
  ANY_VALUE(CASE WHEN `_mw_rn_first` = 1 THEN `_mw_id` END) IGNORE NULLS ASC
