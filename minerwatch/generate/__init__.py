"""Synthetic data for demos, tests and benchmarks: realistic GuardDuty findings with their ground truth.

``generate_findings`` yields findings, ``write_dataset`` writes them in every input shape with a manifest,
``generate_findings_cmd`` is what ``minerwatch generate findings`` runs, and ``write_jsonl_fast`` writes a
large JSON Lines file for benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minerwatch.lazy import lazy_getattr

if TYPE_CHECKING:
    from minerwatch.generate.fast import write_jsonl_fast
    from minerwatch.generate.findings import generate_findings, generate_findings_cmd, plan
    from minerwatch.generate.shapes import write_dataset

ALL_SHAPES: tuple[str, ...] = ("jsonl", "jsonl_gz", "json_array", "eventbridge", "rest", "cli", "s3_export")
"""The input shapes ``write_dataset`` writes (here, so that ``generate findings --help`` lists them without loading
the generator)."""

# The functions are loaded on first use (PEP 562): `minerwatch generate --help` needs only ALL_SHAPES.
_HOME = {
    "generate_findings": "findings",
    "generate_findings_cmd": "findings",
    "plan": "findings",
    "write_dataset": "shapes",
    "write_jsonl_fast": "fast",
}


__getattr__ = lazy_getattr(__name__, _HOME)


__all__ = [
    "ALL_SHAPES",
    "generate_findings",
    "generate_findings_cmd",
    "plan",
    "write_dataset",
    "write_jsonl_fast",
]
