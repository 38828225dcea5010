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
    VARIANT_GET(`doc`, '$[\'service\'][\'count\']', 'variant') AS `_mw_p0`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'FLOAT', 'DOUBLE')
      OR SCHEMA_OF_VARIANT(`_mw_p0`) LIKE 'DECIMAL%'
      THEN VARIANT_GET(`_mw_p0`, '$', 'double')
    END AS `_mw_p0_n`
  FROM _mw_src
)
SELECT
  `id` AS `id`,
  CASE
    WHEN ABS((
      `severity` * CAST(2.0 AS DOUBLE)
    ) + CAST(1.0 AS DOUBLE)) < CAST('Infinity' AS DOUBLE)
    THEN (
      `severity` * CAST(2.0 AS DOUBLE)
    ) + CAST(1.0 AS DOUBLE)
  END AS `s`,
  CASE
    WHEN ABS(`_mw_p0_n` / NULLIF(CAST(0.0 AS DOUBLE), CAST(0.0 AS DOUBLE))) < CAST('Infinity' AS DOUBLE)
    THEN `_mw_p0_n` / NULLIF(CAST(0.0 AS DOUBLE), CAST(0.0 AS DOUBLE))
  END AS `z`
FROM _mw_rows
ORDER BY
  `eventdate` ASC,
  `id` ASC
