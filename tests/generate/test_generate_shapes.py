"""write_dataset: every input shape is written, parses as the shape it claims, and together they hold the
generated stream exactly once."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from minerwatch.generate import ALL_SHAPES, generate_findings_cmd, plan, write_dataset
from minerwatch.generate.shapes import cli_finding

N, SEED = 600, 5
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
S3_PATH = re.compile(
    r"^AWSLogs/(?P<acct>\d{12})/GuardDuty/(?P<region>[a-z]{2}-[a-z]+-\d)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    + UUID
    + r"\.jsonl\.gz$"
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("ds")
    manifest = write_dataset(root / "findings", N, SEED, manifest_path=root / "manifest.json")
    return root / "findings", manifest


def _lines(data: bytes) -> list[Any]:
    return [json.loads(x) for x in data.splitlines() if x.strip()]


def _camel(f: dict[str, Any]) -> bool:
    return {"id", "accountId", "type", "updatedAt", "service", "resource"} <= f.keys()


def _load(folder: Path, entry: dict[str, Any]) -> list[tuple[str, str]]:
    """Parse one file as its declared shape; return its (id, updatedAt) pairs."""
    path = folder / entry["path"]
    data = path.read_bytes()
    shape = entry["shape"]
    if shape in ("jsonl_gz", "s3_export"):
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
    if shape in ("jsonl", "jsonl_gz", "s3_export"):
        items = _lines(data)
        assert all(_camel(f) for f in items)
    elif shape == "json_array":
        items = json.loads(data)
        assert isinstance(items, list) and all(_camel(f) for f in items)
    elif shape == "eventbridge":
        events = _lines(data)
        for e in events:
            assert set(e) == {
                "version",
                "id",
                "detail-type",
                "source",
                "account",
                "time",
                "region",
                "resources",
                "detail",
            }
            assert (e["version"], e["detail-type"], e["source"], e["resources"]) == (
                "0",
                "GuardDuty Finding",
                "aws.guardduty",
                [],
            )
            assert re.fullmatch(UUID, e["id"])
            assert e["account"] == e["detail"]["accountId"] and e["region"] == e["detail"]["region"]
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", e["time"])
            assert e["detail"]["updatedAt"].startswith(e["time"][:-1])
        items = [e["detail"] for e in events]
        assert all(_camel(f) for f in items)
    elif shape == "rest":
        doc = json.loads(data)
        assert set(doc) == {"findings"}
        items = doc["findings"]
        assert 0 < len(items) <= 50 and all(_camel(f) for f in items)
    elif shape == "cli":
        doc = json.loads(data)
        assert set(doc) == {"Findings"}
        assert data.startswith(b'{\n    "Findings": [')  # the CLI's 4-space layout
        items = doc["Findings"]
        assert 0 < len(items) <= 50
        return [(f["Id"], f["UpdatedAt"]) for f in items]
    else:
        raise AssertionError(shape)
    if shape == "s3_export":
        m = S3_PATH.match(entry["path"])
        assert m, entry["path"]
        for f in items:
            assert f["accountId"] == m["acct"] and f["region"] == m["region"]
            assert f["updatedAt"][:10] == f"{m['y']}-{m['m']}-{m['d']}"
    return [(f["id"], f["updatedAt"]) for f in items]


def test_every_shape_is_written_and_parses(dataset: tuple[Path, dict[str, Any]]) -> None:
    folder, manifest = dataset
    assert set(manifest["shapes"]) == set(ALL_SHAPES)
    seen: Counter[tuple[str, str]] = Counter()
    per_shape: Counter[str] = Counter()
    for entry in manifest["files"]:
        keys = _load(folder, entry)
        assert len(keys) == entry["records"]
        assert (folder / entry["path"]).stat().st_size == entry["bytes"]
        seen.update(keys)
        per_shape[entry["shape"]] += len(keys)
    for shape, info in manifest["shapes"].items():
        assert info["records"] == per_shape[shape] > 0
    # Together the shapes hold the generated stream exactly once.
    stream = Counter((f["id"], f["updatedAt"]) for f in plan(N, SEED).findings())
    assert seen == stream
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == {e["path"] for e in manifest["files"]}


def test_cli_files_use_the_models_member_names(
    dataset: tuple[Path, dict[str, Any]], check_pascal: Any
) -> None:
    folder, manifest = dataset
    n = 0
    for entry in manifest["files"]:
        if entry["shape"] != "cli":
            continue
        for f in json.loads((folder / entry["path"]).read_bytes())["Findings"]:
            assert check_pascal(f) == []
            assert set(f["Service"]["AdditionalInfo"]) <= {"Value", "Type"}
            assert isinstance(json.loads(f["Service"]["AdditionalInfo"]["Value"]), dict)
            assert "null" not in json.dumps(f)  # the API omits absent members
            n += 1
    assert n == manifest["shapes"]["cli"]["records"]


def test_cli_finding_renames_by_the_model_not_by_capitalising() -> None:
    p = plan(400, 2)
    sample = next(f for f in p.findings() if f["service"]["additionalInfo"].get("sample"))
    cli = cli_finding(sample)
    codes = cli["Resource"]["InstanceDetails"]["ProductCodes"][0]
    assert set(codes) == {"Code", "ProductType"}  # wire: productCodeId / productCodeType
    assert json.loads(cli["Service"]["AdditionalInfo"]["Value"])["sample"] is True
    runtime = next(f for f in p.findings() if "runtimeDetails" in f["service"])
    start = cli_finding(runtime)["Service"]["RuntimeDetails"]["Process"]["StartTime"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00", start)


def test_dataset_bytes_are_deterministic(tmp_path: Path) -> None:
    m1 = write_dataset(tmp_path / "a", 150, 9)
    m2 = write_dataset(tmp_path / "b", 150, 9)
    assert m1 == m2
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_shape_subset_keeps_the_same_findings(tmp_path: Path) -> None:
    m = write_dataset(tmp_path / "one", 120, 4, shapes=["jsonl"])
    assert [e["path"] for e in m["files"]] == ["findings.jsonl"]
    lines = (tmp_path / "one" / "findings.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [f["id"] for f in plan(120, 4).findings()]


def test_unknown_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shapes"):
        write_dataset(tmp_path, 10, 1, shapes=["parquet"])


def test_generate_findings_cmd_keeps_the_manifest_outside_the_findings(tmp_path: Path) -> None:
    m = generate_findings_cmd(100, 3, tmp_path / "out", ["jsonl", "cli"])
    assert (tmp_path / "out" / "findings" / "findings.jsonl").exists()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == json.loads(json.dumps(m))
    assert set(m["shapes"]) == {"jsonl", "cli"}
    assert not list((tmp_path / "out" / "findings").rglob("manifest*"))


def test_the_project_reader_accepts_every_shape(dataset: tuple[Path, dict[str, Any]]) -> None:
    from minerwatch.sources.guardduty import read_guardduty
    from minerwatch.sources.records import ReadStats

    folder, manifest = dataset
    rejects: list[Any] = []
    records = list(read_guardduty([str(folder)], on_reject=rejects.append, stats=ReadStats()))
    assert rejects == []
    assert len(records) == N
    samples = {r.doc["id"] for r in records if r.sample}
    assert samples == set(manifest["ground_truth"]["sample_ids"])
