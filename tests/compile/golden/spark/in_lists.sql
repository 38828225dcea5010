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
    VARIANT_GET(`doc`, '$[\'service\'][\'count\']', 'variant') AS `_mw_p1`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'STRING'
      THEN VARIANT_GET(`_mw_p0`, '$', 'string')
    END AS `_mw_p0_s`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p1`, '$', 'double')
    END AS `_mw_p1_n`
  FROM _mw_src
)
SELECT
  `eventdate` AS `eventdate`,
  `accountid` AS `accountid`,
  `region` AS `region`,
  `type` AS `type`,
  `title` AS `title`,
  `description` AS `description`,
  `severity` AS `severity`,
  `id` AS `id`,
  `arn` AS `arn`
FROM _mw_rows
WHERE
  (
    `_mw_p0_s` IN ('i-1', 'i-2') AND NOT `type` IN ('a', 'b')
  )
  AND `_mw_p1_n` IN (CAST(1.0 AS DOUBLE), CAST(2.5 AS DOUBLE))
ORDER BY
  `eventdate` ASC,
  `id` ASC
