"""``iam-policy``: the least-privilege IAM policy document of an integration, as JSON."""

from __future__ import annotations

import json
import re

import typer

from minerwatch.aws import DEFAULT_ROLE
from minerwatch.cli.app import app, fail
from minerwatch.errors import MinerWatchError
from minerwatch.respond.integration_policy import INTEGRATIONS, integration_policy, member_trust_policy


@app.command("iam-policy")
def iam_policy_cmd(
    name: str = typer.Option(..., "--for", help=f"The integration: {', '.join(INTEGRATIONS)}."),
    bucket: str | None = typer.Option(
        None, "--bucket", help="securitylake: the lake's bucket (default aws-security-data-lake-*); read: the "
        "buckets of exported findings and logs (default every bucket; wildcards allowed).",
    ),
    role_name: str = typer.Option(DEFAULT_ROLE, "--role-name", help="organizations: the member role."),
    trust: str | None = typer.Option(
        None, "--trust", metavar="ACCOUNT", help="organizations: print the member role's trust policy for this "
        "management (or delegated administrator) account instead.",
    ),
    external_id: str | None = typer.Option(None, "--external-id", help="With --trust: require this external id."),
    evidence: str = typer.Option("evidence", "--evidence", help="respond: the evidence root (folder or s3://)."),
) -> None:
    """Print the IAM policy document an integration needs (see docs/securityhub.md, docs/organizations.md,
    docs/enrichment.md)."""
    try:
        if trust is not None:
            if name != "organizations" or not re.fullmatch(r"[0-9]{12}", trust):
                fail("--trust takes a 12-digit account id, with --for organizations")
            doc = member_trust_policy(trust, external_id)
        else:
            doc = integration_policy(name, bucket=bucket, role_name=role_name, evidence_root=evidence)
    except MinerWatchError as exc:
        fail(exc)
    print(json.dumps(doc, indent=2))
