"""Synthetic data for demos, tests and benchmarks: realistic GuardDuty findings with their ground truth.

``generate_findings`` yields findings, ``write_dataset`` writes them in every input shape with a manifest,
``generate_findings_cmd`` is what ``minerwatch generate findings`` runs, and ``write_jsonl_fast`` writes a
large JSON Lines file for benchmarks.
"""

from minerwatch.generate.fast import write_jsonl_fast
from minerwatch.generate.findings import generate_findings, generate_findings_cmd, plan
from minerwatch.generate.shapes import ALL_SHAPES, write_dataset

__all__ = [
    "ALL_SHAPES",
    "generate_findings",
    "generate_findings_cmd",
    "plan",
    "write_dataset",
    "write_jsonl_fast",
]
