"""Alert ids by prefix: every command that takes an alert id names an ambiguous prefix as such, lists the alerts
it could mean and exits 2; a unique prefix still finds its alert; an unknown id is "no alert" (exit 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import AmbiguousAlertId, StateStore
from minerwatch.cli.all_commands import app
from minerwatch.generate.findings import generate_findings

runner = CliRunner()


@pytest.fixture(scope="module")
def store_with_alerts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("prefix")
    data = root / "findings.jsonl"
    data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(600, seed=5, crypto_ratio=0.3)))
    state = root / "state.db"
    res = runner.invoke(app, ["detect", str(data), "--state", str(state)])
    assert res.exit_code == 0, res.output
    store = StateStore(state)
    ids = sorted(a["alert_id"] for a in store.list_alerts())
    store.close()
    assert len(ids) >= 2
    return state, ids


def _shared_prefix(ids: list[str]) -> tuple[str, list[str]]:
    """The longest prefix two alert ids share, and every id that starts with it."""
    best = max((os.path.commonprefix([a, b]) for a, b in zip(ids, ids[1:], strict=False)), key=len)
    return best, [i for i in ids if i.startswith(best)]


@pytest.mark.parametrize(
    "command",
    [
        ["alerts", "show"],
        ["respond"],
        ["report"],
        ["enrich"],
        ["alerts", "ack"],
    ],
)
def test_an_ambiguous_prefix_lists_the_candidates_and_exits_2(
    store_with_alerts: tuple[Path, list[str]], command: list[str]
) -> None:
    state, ids = store_with_alerts
    prefix, candidates = _shared_prefix(ids)
    assert len(candidates) >= 2
    res = runner.invoke(app, [*command, prefix, "--state", str(state)])
    assert res.exit_code == 2, res.output
    assert f"alert id {prefix!r} is ambiguous" in res.stderr
    for c in candidates:
        assert c in res.stderr
    assert "no alert" not in res.output
    # Nothing was changed by the refused command.
    store = StateStore(state)
    assert {a["status"] for a in store.list_alerts()} == {"new"}
    store.close()


def test_a_unique_prefix_still_finds_the_alert_and_an_unknown_one_is_no_alert(
    store_with_alerts: tuple[Path, list[str]],
) -> None:
    state, ids = store_with_alerts
    target = ids[0]
    unique = next(target[:n] for n in range(4, len(target) + 1) if sum(i.startswith(target[:n]) for i in ids) == 1)
    res = runner.invoke(app, ["alerts", "show", unique, "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["alert_id"] == target

    res = runner.invoke(app, ["alerts", "show", "mw-zz", "--state", str(state)])
    assert res.exit_code == 1
    assert "no alert 'mw-zz'" in res.stderr


def test_the_library_raises_with_every_candidate(store_with_alerts: tuple[Path, list[str]]) -> None:
    state, ids = store_with_alerts
    store = StateStore(state)
    try:
        with pytest.raises(AmbiguousAlertId) as caught:
            store.get_alert("mw-")
    finally:
        store.close()
    assert caught.value.candidates == ids
    shown = caught.value.format()
    assert f"{len(ids)} alerts" in shown and ids[0] in shown
    if len(ids) > AmbiguousAlertId.SHOWN:
        assert f"and {len(ids) - AmbiguousAlertId.SHOWN} more" in shown
