"""The benchmark's flow generator: reproducible gzip files, the requested size, and miners a hunt finds exactly."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest

from minerwatch.enrich.iocs import IocSet, default_for_rule, merge
from minerwatch.generate.flows import HEADER, miner_enis, write_flow_files
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import RULES_DIR

HUNT_RULE = RULES_DIR / "aws-ioc-hunt-crypto-mining.md"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("flows")
    return out, write_flow_files(out, 40_000, 3, seed=5, hit_ratio=0.01, processes=2)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_files_records_and_reproducibility(written: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, meta = written
    assert len(meta["files"]) == 3
    lines = 0
    for f in meta["files"]:
        text = gzip.decompress(Path(f["path"]).read_bytes())
        assert text.startswith(HEADER)
        n = text.count(b"\n") - 1
        assert n == f["records"]
        lines += n
    assert lines == meta["records"] and 40_000 <= meta["records"] <= 40_003
    assert 0.005 < meta["hit_records"] / meta["records"] < 0.02
    again = write_flow_files(tmp_path, 40_000, 3, seed=5, hit_ratio=0.01, processes=1)
    assert _digest(tmp_path) == _digest(out)
    assert again["records"] == meta["records"]
    other = tmp_path / "other"
    write_flow_files(other, 40_000, 3, seed=6, hit_ratio=0.01, processes=1)
    assert _digest(other) != _digest(out)


def test_a_hunt_finds_exactly_the_miners(written: tuple[Path, dict[str, Any]]) -> None:
    out, meta = written
    iocs = merge(
        default_for_rule(load_rule(HUNT_RULE)),
        IocSet.of(ips=meta["ioc_ips"] + meta["ioc_cidrs"], source="bench"),
    )
    expected = miner_enis(meta)
    assert len(expected) > 20
    kinds = {m["kind"] for m in meta["miners"]}
    assert kinds == {"ip+port", "ip", "cidr", "port"}
    for engine in ("duckdb", "python"):
        result = hunt(iocs, HuntOptions(flow=[str(out)], engine=engine))  # type: ignore[arg-type]
        assert {(e.account, e.entity) for e in result.entities} == expected
        assert result.stats.flow is not None
        assert result.stats.flow.matched == meta["hit_records"]
        assert result.stats.flow.records == meta["records"]
    # Each kind of miner matches through its kind of indicator only.
    by_eni = {e.entity: e for e in result.entities}
    for m in meta["miners"]:
        e = by_eni[m["eni"]]
        want = {"ip+port": {"ip", "port"}, "ip": {"ip"}, "cidr": {"cidr", "port"}, "port": {"port"}}[m["kind"]]
        assert set(e.kinds) == want, (m, e.kinds)


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_flow_files(tmp_path, 0, 1)
    with pytest.raises(ValueError):
        write_flow_files(tmp_path, 10, 1, hit_ratio=0.9)
