SELECT
  `id` AS `id`,
  `eventdate` AS `eventdate`
FROM `cloud_aws_guardduty`
WHERE
  `eventdate` >= CAST('2024-01-01 00:00:00.000000' AS TIMESTAMP_NTZ)
  AND `eventdate` < CAST('2024-02-01 00:00:00.000000' AS TIMESTAMP_NTZ)
ORDER BY
  `eventdate` ASC,
  `id` ASC
