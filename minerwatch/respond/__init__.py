"""Response: the rule's playbook as an ordered plan of AWS calls and manual checklist items, run with an audit
trail; and the pieces it is made of.

In the layering (… → alerting → enrich → respond → posture → cli) this stage may read alerts, enrichment
sections and rules; nothing before it imports from here.

Modules:

``plan``       steps, calls and the playbook → step skeleton (data only)
``aws``        boto3 session, assume-role, clients honouring AWS_ENDPOINT_URL, calls by API name
``discover``   the instance and what the response touches, read before every plan and step
``actions``    the automated actions: tag + protect, evidence, isolate, snapshot, detach profile,
               deactivate keys, stop, terminate; and the rollback calls
``evidence``   evidence files with a SHA-256 manifest, local or S3
``journal``    per-alert step state (resume, rollback)
``execute``    plan / execute / rollback of one alert, audited
``policy``     the least-privilege IAM policy, derived from the planned calls
"""

APPROVALS: tuple[str, ...] = ("terminate", "deactivate-keys", "revoke-sessions", "reset-credentials", "nacl-deny")
"""Steps that run only when named with ``--approve`` (here, so that ``respond --help`` shows them without boto3)."""
