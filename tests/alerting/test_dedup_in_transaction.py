"""Deliveries seen by an earlier run are duplicates even when they arrive inside an open transaction."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.alerting.state import StateStore
from minerwatch.generate.findings import generate_findings
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE


def test_a_delivery_of_an_earlier_run_is_a_duplicate_inside_a_transaction(tmp_path):
    crypto = [f for f in generate_findings(400, seed=5, crypto_ratio=0.5) if "CryptoCurrency" in f["type"]]
    findings = sorted({(f["id"], f["updatedAt"]): f for f in crypto}.values(), key=lambda f: f["updatedAt"])
    old, new = findings[10:], findings[:10]  # the new ones sort first, so a transaction is open for the old ones
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in old))
    second.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in old + new))
    rule = load_rule(DEFAULT_RULE)
    opts = DetectOptions(state=str(tmp_path / "state.db"), workers=1)
    s1 = detect(rule, [str(first)], opts)
    s2 = detect(rule, [str(second)], opts)
    assert s1.matched == len(old) > 20
    assert (s2.matched, s2.duplicates) == (len(new), len(old))


@pytest.mark.parametrize("sqlite_version", [None, (3, 34, 0)], ids=["returning", "before-3.35"])
def test_marking_many_deliveries_gives_each_new_one_once(tmp_path, monkeypatch, sqlite_version):
    if sqlite_version is not None:
        monkeypatch.setattr(sqlite3, "sqlite_version_info", sqlite_version)
    store = StateStore(tmp_path / "state.db")
    store.begin()
    assert store.mark_seen("rule", "old", "1")
    many = [(f"f{i}", "1") for i in range(700)]  # more than one statement's worth
    fresh = store.mark_seen_many("rule", [("old", "1"), ("new", "1"), ("new", "1"), ("new", "2"), *many])
    store.commit()
    assert fresh == {("new", "1"), ("new", "2"), *many}
    store.begin()
    assert store.mark_seen_many("rule", [("new", "2"), ("f5", "1")]) == set()
    assert store.mark_seen_many("other rule", [("new", "2")]) == {("new", "2")}
    store.close()
