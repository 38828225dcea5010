"""write_jsonl_fast: valid JSON Lines of the requested size, about 2 % crypto lines, deterministic."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from minerwatch.generate.fast import write_jsonl_fast

ISO_MS = re.compile(rb"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TARGET = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("fast") / "f.jsonl"
    return path, write_jsonl_fast(path, TARGET, seed=4)


def test_size_and_line_count(written: tuple[Path, dict[str, object]]) -> None:
    path, meta = written
    data = path.read_bytes()
    lines = data.splitlines()
    assert len(data) == meta["bytes"]
    assert len(lines) == meta["lines"]
    # It stops at the first line that reaches the target.
    assert TARGET <= len(data) < TARGET + max(len(x) + 1 for x in lines)
    assert data.endswith(b"\n")


def test_every_line_is_a_finding(written: tuple[Path, dict[str, object]], check_wire: object) -> None:
    path, _ = written
    ids: set[str] = set()
    previous = ""
    for i, line in enumerate(path.read_bytes().splitlines()):
        f = orjson.loads(line)
        assert {
            "id",
            "accountId",
            "type",
            "severity",
            "updatedAt",
            "createdAt",
            "resource",
            "service",
        } <= f.keys()
        assert ISO_MS.match(f["updatedAt"].encode()) and ISO_MS.match(f["createdAt"].encode())
        assert f["createdAt"] <= f["updatedAt"]
        assert f["updatedAt"] >= previous
        previous = f["updatedAt"]
        assert f["arn"].endswith("/finding/" + f["id"])
        assert re.fullmatch(r"[0-9a-f]{32}", f["id"])
        ids.add(f["id"])
        details = f["resource"].get("instanceDetails")
        if details:
            assert re.fullmatch(r"i-0[0-9a-f]{16}", details["instanceId"])
            assert "INSTANCE" not in f["title"]
        if i % 50 == 0:
            assert check_wire(f) == []  # type: ignore[operator]
    assert len(ids) == len(path.read_bytes().splitlines())


def test_about_two_percent_crypto_from_many_instances(written: tuple[Path, dict[str, object]]) -> None:
    path, meta = written
    crypto = 0
    victims: Counter[tuple[str, str | None]] = Counter()
    for line in path.read_bytes().splitlines():
        f = orjson.loads(line)
        if "CryptoCurrency" in f["type"]:
            crypto += 1
            d = f["resource"].get("instanceDetails") or {}
            victims[(f["accountId"], d.get("instanceId"))] += 1
            assert b"CryptoCurrency" in line  # what a byte prefilter on the rule's literal keeps
    assert crypto == meta["crypto_lines"]
    assert 0.01 <= crypto / int(meta["lines"]) <= 0.035  # type: ignore[call-overload]
    assert len(victims) >= 3


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_jsonl_fast(a, 300_000, seed=8)
    write_jsonl_fast(b, 300_000, seed=8)
    write_jsonl_fast(c, 300_000, seed=9)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
