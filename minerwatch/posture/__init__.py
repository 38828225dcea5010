"""Posture: the rule's Prevention Measures checked against an AWS account (see ``checks``).

Comes after ``respond`` in the layering (it reuses its AWS session); read-only."""
