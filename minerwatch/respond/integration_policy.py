"""Least-privilege IAM policy documents of the integrations, printed by ``minerwatch iam-policy --for NAME``.

==============  ===========================================================================================
securityhub     ``--to-securityhub`` / a ``securityhub`` destination: import findings into the account's own
                product, set their workflow status; read GuardDuty findings back with ``get-findings``
securitylake    reading Security Lake's Parquet objects (``s3://<lake bucket>/aws/SH_FINDINGS/...``)
organizations   ``--org``: list the accounts and assume the member role; the member role's trust policy is
                printed with ``--trust`` (the role itself needs what the command run in it needs, e.g. the
                ``posture`` read-only calls or ``respond --iam-policy``)
respond         the response playbook's calls (the same as ``respond --iam-policy``)
read            ``detect``/``hunt``/``watch`` reading the GuardDuty API (``guardduty://``) and S3 objects (exported
                findings, flow and Resolver logs, in ``--bucket``), also as the member role of ``--org`` reads;
                GuardDuty's exports are KMS-encrypted, so decryption through S3 is allowed too
enrich          ``enrich``'s API sources: ``--cloudwatch``, ``--cost-explorer``, ``--aws-config``, ``--inspector``
                (all read-only; none of them takes resource-level permissions)
==============  ===========================================================================================
"""

from __future__ import annotations

from typing import Any

from minerwatch.aws import DEFAULT_ROLE
from minerwatch.errors import MinerWatchError

INTEGRATIONS = ("securityhub", "securitylake", "organizations", "read", "respond", "enrich")


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def integration_policy(
    name: str, *, bucket: str | None = None, role_name: str = DEFAULT_ROLE,
    evidence_root: str = "evidence",
) -> dict[str, Any]:
    """The policy document for ``name`` (one of :data:`INTEGRATIONS`); ``bucket`` defaults to Security Lake's
    buckets for ``securitylake`` and to every bucket for ``read``."""
    bucket = bucket or ("aws-security-data-lake-*" if name == "securitylake" else "*")
    if name == "securityhub":
        return _doc(
            {
                "Sid": "MinerWatchImportFindings",
                "Effect": "Allow",
                "Action": ["securityhub:BatchImportFindings"],
                "Resource": "arn:aws:securityhub:*:*:product/*/default",
            },
            {
                "Sid": "MinerWatchFindingWorkflow",
                "Effect": "Allow",
                "Action": ["securityhub:BatchUpdateFindings", "securityhub:GetFindings"],
                "Resource": "*",  # these two take no resource-level permissions
            },
            {"Sid": "MinerWatchWhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
        )
    if name == "securitylake":
        return _doc(
            {
                "Sid": "MinerWatchListLake",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": ["aws/SH_FINDINGS/*"]}},
            },
            {
                "Sid": "MinerWatchReadLake",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/aws/SH_FINDINGS/*",
            },
        )
    if name == "organizations":
        return _doc(
            {"Sid": "MinerWatchListAccounts", "Effect": "Allow", "Action": ["organizations:ListAccounts"],
             "Resource": "*"},  # fmt: skip
            {
                "Sid": "MinerWatchAssumeMemberRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": f"arn:aws:iam::*:role/{role_name}",
            },
            {"Sid": "MinerWatchWhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
        )
    if name == "read":
        return _doc(
            {"Sid": "MinerWatchFindDetectors", "Effect": "Allow", "Action": ["guardduty:ListDetectors"],
             "Resource": "*"},  # fmt: skip
            {
                "Sid": "MinerWatchReadFindings",
                "Effect": "Allow",
                "Action": ["guardduty:GetDetector", "guardduty:ListFindings", "guardduty:GetFindings"],
                "Resource": "arn:aws:guardduty:*:*:detector/*",
            },
            {"Sid": "MinerWatchListLogs", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": f"arn:aws:s3:::{bucket}"},  # fmt: skip
            {"Sid": "MinerWatchReadLogs", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": f"arn:aws:s3:::{bucket}/*"},  # fmt: skip
            {
                "Sid": "MinerWatchDecryptExports",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            },
        )
    if name == "respond":
        # Start-up: the playbook's policy loads the actions and boto3; `iam-policy --help` needs none of that.
        from minerwatch.respond.policy import iam_policy

        return iam_policy(evidence_root)
    if name == "enrich":
        # Read-only calls that take no resource-level permissions: "*" is the narrowest resource there is.
        return _doc(
            {"Sid": "MinerWatchCpu", "Effect": "Allow", "Action": ["cloudwatch:GetMetricStatistics"], "Resource": "*"},
            {"Sid": "MinerWatchBilledCost", "Effect": "Allow", "Action": ["ce:GetCostAndUsage"], "Resource": "*"},
            {
                "Sid": "MinerWatchConfigHistory",
                "Effect": "Allow",
                "Action": ["config:GetResourceConfigHistory", "config:DescribeConfigurationRecorderStatus"],
                "Resource": "*",
            },
            {
                "Sid": "MinerWatchInspectorFindings",
                "Effect": "Allow",
                "Action": ["inspector2:ListFindings", "inspector2:BatchGetAccountStatus"],
                "Resource": "*",
            },
        )
    raise MinerWatchError(f"no IAM policy for {name!r}: {', '.join(INTEGRATIONS)}")


def member_trust_policy(management_account: str, external_id: str | None = None) -> dict[str, Any]:
    """Trust policy of the member role: only the management (or delegated administrator) account may assume it."""
    stmt: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{management_account}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        stmt["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return _doc(stmt)
