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
    VARIANT_GET(
      `doc`,
      '$[\'service\'][\'action\'][\'networkConnectionAction\'][\'remotePortDetails\'][\'port\']',
      'variant'
    ) AS `_mw_p1`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'STRING'
      THEN VARIANT_GET(`_mw_p0`, '$', 'string')
    END AS `_mw_p0_s`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'STRING'
      THEN VARIANT_GET(`_mw_p1`, '$', 'string')
    END AS `_mw_p1_s`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p0`, '$', 'double')
    END AS `_mw_p0_n`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p1`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p1`, '$', 'double')
    END AS `_mw_p1_n`
  FROM _mw_src
)
SELECT
  `id` AS `id`
FROM _mw_rows
WHERE
  CASE
    WHEN NOT `_mw_p0_s` IS NULL AND NOT `_mw_p1_s` IS NULL
    THEN `_mw_p0_s` > `_mw_p1_s`
    WHEN NOT `_mw_p0_n` IS NULL AND NOT `_mw_p1_n` IS NULL
    THEN `_mw_p0_n` > `_mw_p1_n`
  END
ORDER BY
  `eventdate` ASC,
  `id` ASC
