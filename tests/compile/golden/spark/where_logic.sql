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
  `severity` >= CAST(7.0 AS DOUBLE)
  AND NOT (
    `region` = 'us-east-1' OR `region` = 'x'
  )
ORDER BY
  `eventdate` ASC,
  `id` ASC
