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
    VARIANT_GET(`doc`, '$[\'resource\'][\'a.b "c" d\']', 'variant') AS `_mw_p0`,
    VARIANT_GET(`doc`, '$[\'x y\'][\'z\']', 'variant') AS `_mw_p1`
  FROM `cloud_aws_guardduty`
), _mw_rows AS (
  SELECT
    *
  FROM _mw_src
)
SELECT
  `_mw_p0` AS `k`,
  `_mw_p1` AS `v`
FROM _mw_rows
ORDER BY
  `eventdate` ASC,
  `id` ASC
