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
FROM `cloud_aws_guardduty`
WHERE
  `id` = 'x'
ORDER BY
  `eventdate` ASC,
  `id` ASC
