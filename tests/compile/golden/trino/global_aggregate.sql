WITH _mw_base AS (
  SELECT
    "eventdate" AS "_mw_t",
    "id" AS "_mw_id",
    "severity" AS "_mw_a1"
  FROM "cloud_aws_guardduty"
), _mw_ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (ORDER BY "_mw_t" DESC, "_mw_id" DESC) AS "_mw_rn_last",
    ROW_NUMBER() OVER (ORDER BY "_mw_t" ASC NULLS FIRST, "_mw_id" ASC NULLS FIRST) AS "_mw_rn_first"
  FROM _mw_base
)
SELECT
  COUNT(*) AS "count",
  MAX("_mw_a1") AS "m"
FROM _mw_ranked
