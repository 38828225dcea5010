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
    VARIANT_GET(`doc`, '$[\'service\'][\'archived\']', 'variant') AS `_mw_p0`,
    VARIANT_GET(`doc`, '$[\'service\'][\'additionalInfo\'][\'sample\']', 'variant') AS `_mw_p1`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p0`) = 'BOOLEAN'
      THEN VARIANT_GET(`_mw_p0`, '$', 'boolean')
    END AS `_mw_p0_b`,
    CASE
      WHEN SCHEMA_OF_VARIANT(`_mw_p1`) = 'BOOLEAN'
      THEN VARIANT_GET(`_mw_p1`, '$', 'boolean')
    END AS `_mw_p1_b`
  FROM _mw_src
)
SELECT
  `id` AS `id`
FROM _mw_rows
WHERE
  `_mw_p0_b` OR `_mw_p1_b`
ORDER BY
  `eventdate` ASC,
  `id` ASC
