"""Synthetic data for demos, tests and benchmarks: realistic GuardDuty findings with their ground truth.

``generate_findings`` yields findings, ``write_dataset`` writes them in every input shape with a manifest,
``generate_findings_cmd`` is what ``minerwatch generate findings`` runs, and ``write_jsonl_fast`` writes a
large JSON Lines file for benchmarks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"minerwatch.generate.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_SHAPES",
    "generate_findings",
    "generate_findings_cmd",
    "plan",
    "write_dataset",
    "write_jsonl_fast",
]
