"""Synthetic data for demos, tests and benchmarks: realistic GuardDuty findings with their ground truth."""

from minerwatch.generate.findings import generate_findings, generate_findings_cmd, plan
from minerwatch.generate.shapes import ALL_SHAPES, write_dataset

__all__ = ["ALL_SHAPES", "generate_findings", "generate_findings_cmd", "plan", "write_dataset"]
