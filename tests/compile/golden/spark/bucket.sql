WITH _mw_base AS (
  SELECT
    `eventdate` AS `_mw_t`,
    `id` AS `_mw_id`,
    TIMESTAMPADD(
      MICROSECOND,
      TIMESTAMPDIFF(MICROSECOND, CAST('1970-01-01 00:00:00' AS TIMESTAMP_NTZ), `eventdate`) - (
        TIMESTAMPDIFF(MICROSECOND, CAST('1970-01-01 00:00:00' AS TIMESTAMP_NTZ), `eventdate`) % 3600000000 + 3600000000
      ) % 3600000000,
      CAST('1970-01-01 00:00:00' AS TIMESTAMP_NTZ)
    ) AS `_mw_bucket`,
    `type` AS `_mw_g0`,
    `type` AS `_mw_k0`,
    `region` AS `_mw_g1`,
    `region` AS `_mw_k1`,
    `region` AS `_mw_s0`
  FROM `cloud_aws_guardduty`
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY `_mw_bucket`, `_mw_g0`, `_mw_g1`
      ORDER BY `_mw_t` DESC, `_mw_id` DESC
    ) AS `_mw_rn_last`,
    ROW_NUMBER() OVER (PARTITION BY `_mw_bucket`, `_mw_g0`, `_mw_g1` ORDER BY `_mw_t` ASC, `_mw_id` ASC) AS `_mw_rn_first`
  FROM _mw_base
)
SELECT
  `_mw_bucket` AS `bucket`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_k0` END) IGNORE NULLS AS `type`,
  ANY_VALUE(CASE WHEN `_mw_rn_last` = 1 THEN `_mw_s0` END) IGNORE NULLS AS `region`,
  COUNT(*) AS `count`,
  MIN(`_mw_t`) AS `first_seen`,
  MAX(`_mw_t`) AS `last_seen`
FROM _mw_ranked
GROUP BY
  `_mw_bucket`,
  `_mw_g0`,
  `_mw_g1`
ORDER BY
  MIN(`_mw_t`) ASC,
  ANY_VALUE(CASE WHEN `_mw_rn_first` = 1 THEN `_mw_id` END) IGNORE NULLS ASC
