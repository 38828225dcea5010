"""Posture: the rule's Prevention Measures checked against an AWS account (see ``checks``).

Comes after ``respond`` in the layering (it reuses its AWS session); read-only."""

CHECK_IDS = ("guardduty", "imdsv2", "admin-ports", "cpu-alarms", "cloudtrail", "flow-logs")
"""The checks in the order they run (here, so that ``posture --help`` lists them without boto3)."""
