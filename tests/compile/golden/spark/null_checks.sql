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
    VARIANT_GET(`doc`, '$[\'service\'][\'action\']', 'variant') AS `_mw_p0`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *,
    `_mw_p0` IS NULL OR SCHEMA_OF_VARIANT(`_mw_p0`) = 'VOID' AS `_mw_p0_z`
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
  NOT `_mw_p0_z` AND `region` IS NULL
ORDER BY
  `eventdate` ASC,
  `id` ASC
