"""The committed sample data is exactly what its README's command produces, and stays small."""

from __future__ import annotations

import json
from pathlib import Path

from minerwatch.generate import generate_findings_cmd

SAMPLES = Path(__file__).resolve().parents[2] / "minerwatch" / "data" / "samples"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bundled_samples_are_reproducible(tmp_path: Path) -> None:
    readme = (SAMPLES / "README.md").read_text()
    assert "generate_findings_cmd(2500, 7, 'minerwatch/data/samples')" in readme
    generate_findings_cmd(2500, 7, tmp_path)
    fresh = _files(tmp_path / "findings")
    committed = _files(SAMPLES / "findings")
    assert fresh.keys() == committed.keys()
    for rel, data in fresh.items():
        assert committed[rel] == data, rel
    assert json.loads((tmp_path / "manifest.json").read_bytes()) == json.loads(
        (SAMPLES / "manifest.json").read_bytes()
    )


def test_bundled_samples_stay_small() -> None:
    total = sum(len(b) for b in _files(SAMPLES).values())
    assert total < 3 * 1024 * 1024


def test_bundled_manifest_describes_the_demo() -> None:
    gt = json.loads((SAMPLES / "manifest.json").read_bytes())["ground_truth"]
    assert gt["totals"]["deliveries"] == 2500
    assert len(gt["crypto_ids"]) >= 10
    assert gt["sample_crypto_ids"] and gt["duplicate_deliveries"] and gt["recurring_ids"]
    assert len(gt["expected_alerts_seed_rule"]) >= 5
