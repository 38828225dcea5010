"""AWS access shared by every stage that calls AWS: one boto3 session per set of credentials (``session``) and the
AWS Organizations fan-out across accounts (``org``). It sits below ``sources``, ``live`` and ``respond``, which
all import it, and imports nothing of theirs.

The defaults of ``--org`` are here, so that the command line shows them without loading boto3."""

DEFAULT_ROLE = "OrganizationAccountAccessRole"
"""The role AWS Organizations creates in the accounts it creates."""
DEFAULT_SESSION = "minerwatch"
