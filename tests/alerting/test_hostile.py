"""Hostile input never crashes a run, never alerts, is rejected with file, line and reason; valid records go on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.generate.findings import generate_findings

runner = CliRunner()


def _crypto(findings: list[dict]) -> dict:
    return next(f for f in findings if f["type"].startswith("CryptoCurrency:EC2") and f["severity"] >= 7)


def _hostile_lines(template: dict) -> dict[str, bytes]:
    """Each hostile line carries the crypto type, so it passes the byte prefilter and must be judged in full."""
    def variant(**changes) -> bytes:
        return orjson.dumps({**template, "id": "hostile-" + "-".join(changes), **changes})

    redacted = variant(updatedAt="XXXX-XX-XXTXX:XX:XXZ", createdAt="XXXX-XX-XXTXX:XX:XXZ")
    return {
        "invalid UTF-8": variant(title="x")[:-2] + b'\xff\xfe"}',
        "nesting": b'{"type":"CryptoCurrency:EC2/BitcoinTool.B","x":' + b"[" * 20000 + b"]" * 20000 + b"}",
        "too large": variant(description="CryptoCurrency " * 350_000),
        "redacted timestamps": redacted,
        "wrong field types": variant(severity="high", accountId=123456789012),
        "non-finding JSON": orjson.dumps({"eventName": "RunInstances", "note": "CryptoCurrency", "Records": 1}),
        "garbage": b"\x00\x01 not json at all CryptoCurrency",
    }


@pytest.fixture(scope="module")
def findings() -> list[dict]:
    return list(generate_findings(600, seed=21, crypto_ratio=0.2))


def _alerts(state: Path) -> list[dict]:
    res = runner.invoke(app, ["alerts", "list", "--state", str(state), "--json"])
    return [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]


@pytest.mark.parametrize("extra", [[], ["--no-prefilter"]])
def test_hostile_lines_are_rejected_and_the_rest_processed(tmp_path, findings, extra):
    hostile = _hostile_lines(_crypto(findings))
    data = tmp_path / "in"
    data.mkdir()
    lines, where = [], {}
    for i, f in enumerate(findings):
        lines.append(orjson.dumps(f))
        if i % 80 == 0 and hostile:
            name, raw = hostile.popitem()
            lines.append(raw)
            where[len(lines)] = name
    assert not hostile
    (data / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    whole = gzip.compress(b"".join(orjson.dumps(f) + b"\n" for f in findings[:50]))
    (data / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])

    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "f.jsonl").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    runner.invoke(app, ["detect", str(clean), "--state", str(tmp_path / "clean.db")])

    state, rejects = tmp_path / "s.db", tmp_path / "rejects.jsonl"
    res = runner.invoke(app, ["detect", str(data), "--state", str(state), "--rejects", str(rejects), *extra])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in rejects.read_text().splitlines()]
    mixed = {r["line"]: r for r in rows if r["file"].endswith("mixed.jsonl")}
    assert set(mixed) == set(where), (mixed, where)
    for line, r in mixed.items():
        assert r["reason"], where[line]
    assert "redacted timestamps" in where.values() and any("updatedAt" in r["reason"] for r in mixed.values())
    gz = [r for r in rows if r["file"].endswith("truncated.jsonl.gz")]
    assert len(gz) == 1 and gz[0]["line"] >= 1 and "gzip" in gz[0]["reason"].lower()
    # Nothing hostile alerted; every valid record still did its part (the truncated gzip repeats some of them).
    ids = {f for a in _alerts(state) for f in a["finding_ids"]}
    assert not any(i.startswith("hostile") for i in ids)
    assert ids == {f for a in _alerts(tmp_path / "clean.db") for f in a["finding_ids"]}

    strict = runner.invoke(app, ["detect", str(data), "--state", str(tmp_path / "t.db"), "--strict", *extra])
    assert strict.exit_code == 1
