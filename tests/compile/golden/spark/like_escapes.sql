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
  `title` LIKE '50\\% of %' ESCAPE '\\' OR NOT `type` LIKE 'Recon:%_' ESCAPE '\\'
ORDER BY
  `eventdate` ASC,
  `id` ASC
