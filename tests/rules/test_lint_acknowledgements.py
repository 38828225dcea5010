"""A rule acknowledges the lint warnings it means; `lint` and `detect` show only the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.rules.lint import lint_path
from minerwatch.rules.shipped import SAMPLES_DIR, shipped_rules

runner = CliRunner()
SEED_CODES = ["mitre-name", "unmatched-types", "precedence", "ungrouped"]


@pytest.mark.parametrize("path", shipped_rules(), ids=lambda p: p.stem)
def test_shipped_rules_lint_clean(path: Path) -> None:
    result = lint_path(path)
    assert result.errors == [] and result.warnings == []
    res = runner.invoke(app, ["lint", str(path)])
    assert res.exit_code == 0 and "ok (0 warnings" in res.stdout


def test_the_verbatim_seed_still_warns(seed_path: Path) -> None:
    result = lint_path(seed_path)
    assert [w.code for w in result.warnings] == SEED_CODES and result.acknowledged == []


def _with_acks(seed_path: Path, tmp_path: Path, items: str) -> Path:
    path = tmp_path / "narrow.md"
    path.write_text(seed_path.read_text() + "\n## Lint Acknowledgements\n" + items)
    return path


def test_acknowledged_codes_are_not_reported_and_keep_their_reason(seed_path: Path, tmp_path: Path) -> None:
    path = _with_acks(seed_path, tmp_path, "- `unmatched-types`: deliberately narrow, Impact types elsewhere\n"
                                           "- ungrouped: latest values are what we want\n")
    result = lint_path(path)
    assert [w.code for w in result.warnings] == ["mitre-name", "precedence"]
    assert [(i.code, a.reason) for i, a in result.acknowledged] == [
        ("unmatched-types", "deliberately narrow, Impact types elsewhere"),
        ("ungrouped", "latest values are what we want"),
    ]
    res = runner.invoke(app, ["lint", str(path), "--acknowledged"])
    assert res.exit_code == 0
    assert "ok (2 warnings, 2 acknowledged)" in res.stdout
    assert "warning[unmatched-types]" in res.stdout and "(acknowledged: deliberately narrow" in res.stdout
    plain = runner.invoke(app, ["lint", str(path)])
    assert "warning[unmatched-types]" not in plain.stdout and "warning[precedence]" in plain.stdout


def test_an_acknowledgement_without_a_warning_or_a_reason_is_reported(seed_path: Path, tmp_path: Path) -> None:
    path = _with_acks(seed_path, tmp_path, "- null-compare: nothing compares to null here\n- precedence\n")
    result = lint_path(path)
    texts = [w.text for w in result.warnings]
    assert any("warning[unused-acknowledgement]: 'null-compare' is acknowledged but there is no such warning" in t
               for t in texts)
    assert any("lint acknowledgement not understood (expected '- code: reason'): 'precedence'" in t for t in texts)
    assert "precedence" in [w.code for w in result.warnings]  # not acknowledged: it had no reason


def test_detect_prints_unacknowledged_warnings_once_and_quiet_hides_them(seed_path: Path, tmp_path: Path) -> None:
    findings = SAMPLES_DIR / "findings"
    inputs = [str(p) for p in sorted(findings.iterdir())[:3]]
    assert len(inputs) == 3
    res = runner.invoke(app, ["detect", *inputs, "--rule", str(seed_path), "--state", str(tmp_path / "a.db")])
    assert res.exit_code == 0, res.output
    for code in SEED_CODES:
        assert res.stderr.count(f"warning[{code}]") == 1, res.stderr
    assert res.stderr.index("warning[mitre-name]") < res.stderr.index("records read")
    quiet = runner.invoke(app, ["detect", *inputs, "--rule", str(seed_path), "--state", str(tmp_path / "b.db"),
                                "--quiet"])
    assert quiet.exit_code == 0 and "warning[" not in quiet.stderr and "records read" in quiet.stderr
    shipped = runner.invoke(app, ["detect", *inputs, "--state", str(tmp_path / "c.db")])
    assert shipped.exit_code == 0 and "warning[" not in shipped.stderr
