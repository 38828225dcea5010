"""Each source's semantics: findings (outbound ports, re-sent findings, AWS samples), rejects and fallbacks of the
flow sweep, stdin, ENI mapping from CloudTrail, addresses resolved by matching queries, CSV cells."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.enrich.iocs import IocSet
from minerwatch.errors import InputError
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.hunt.model import SAMPLE_LIMIT, Entity, Sample
from minerwatch.hunt.output import csv_row
from minerwatch.sources.vpcflow import V2_FIELDS

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real"
V2_HEADER = " ".join(V2_FIELDS)


def _hunt_json(*args: str, stdin: str | None = None) -> dict[str, Any]:
    res = runner.invoke(app, ["hunt", *args, "--format", "json"], input=stdin)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# -- GuardDuty -----------------------------------------------------------------------------------------------


def _crypto_finding(root: Path) -> dict[str, Any]:
    for f in sorted((root / "guardduty").rglob("*.gz")):
        for line in gzip.decompress(f.read_bytes()).splitlines():
            doc = json.loads(line)
            if doc["type"] == "CryptoCurrency:EC2/BitcoinTool.B":
                return doc
    raise AssertionError("the scenario has BitcoinTool.B findings")


def test_findings_outbound_port_counts_inbound_does_not(
    scenario: tuple[Path, dict[str, Any]], tmp_path: Path, hunt_iocs: IocSet
) -> None:
    root, _ = scenario
    base = _crypto_finding(root)
    conn = base["service"]["action"]["networkConnectionAction"]
    assert conn["connectionDirection"] == "OUTBOUND" and hunt_iocs.match_port(conn["remotePortDetails"]["port"])
    resent = copy.deepcopy(base)
    resent["updatedAt"] = "2030-01-01T00:00:00.000Z"
    resent["service"]["count"] = base["service"].get("count", 1) + 5
    inbound = copy.deepcopy(base)
    inbound["id"] = "f" * 32
    inbound["service"]["action"]["networkConnectionAction"]["connectionDirection"] = "INBOUND"
    inbound["resource"]["instanceDetails"]["instanceId"] = "i-0123456789abcdef0"
    path = tmp_path / "findings.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in (base, resent, inbound)))
    result = hunt(hunt_iocs, HuntOptions(findings=[str(path)]))
    assert [e.entity for e in result.entities] == [base["resource"]["instanceDetails"]["instanceId"]]
    e = result.entities[0]
    assert e.findings == 1 and e.finding_ids.values == [base["id"]]
    assert e.to_json()["last_seen"] == "2030-01-01T00:00:00Z"
    port = str(conn["remotePortDetails"]["port"])
    assert [(m.evidence, m.kind, m.indicator, m.records) for m in e.sorted_matches()] == [("finding", "port", port, 1)]
    assert result.stats.findings is not None and result.stats.findings.records == 3


def test_aws_sample_findings_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    ioc = tmp_path / "iocs.txt"
    ioc.write_text("81.2.69.144\n")
    findings = str(SAMPLES / "guardduty")
    without = _hunt_json("--findings", findings, "--ioc", str(ioc), "--no-bundled")
    assert without["entities"] == []
    assert without["stats"]["sources"]["findings"]["skipped_samples"] > 0
    with_samples = _hunt_json("--findings", findings, "--ioc", str(ioc), "--no-bundled", "--include-samples")
    (e,) = with_samples["entities"]
    assert e["entity"] == "i-99999999" and e["findings"] >= 1
    assert {m["indicator"] for m in e["matches"]} == {"81.2.69.144"}


# -- flow rejects and fallbacks ------------------------------------------------------------------------------


def _line(eni: str, src: str, dst: str, sport: int, dport: int, start: int = 1_741_594_200) -> str:
    return f"2 111122223333 {eni} {src} {dst} {sport} {dport} 6 10 1000 {start} {start + 60} ACCEPT OK"


def test_bad_lines_and_json_exports_go_through_the_record_reader(tmp_path: Path, hunt_iocs: IocSet) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "good.log").write_text(
        V2_HEADER + "\n" + _line("eni-0aaa", "10.0.0.1", "198.51.100.9", 40000, 3333) + "\n"
    )
    # A non-integer port and a repeated header with another field order: DuckDB must not read this file.
    swapped = V2_HEADER.replace("srcaddr dstaddr", "dstaddr srcaddr")
    (flows / "bad.log").write_text(
        V2_HEADER
        + "\n"
        + _line("eni-0bbb", "10.0.0.2", "198.51.100.9", 40000, 14444)
        + "\n2 111122223333 eni-0bbb 10.0.0.2 1.1.1.1 x 443 6 1 1 1741594200 1741594260 ACCEPT OK\n"
        + swapped
        + "\n"
        + _line("eni-0bbb", "198.51.100.9", "10.0.0.2", 40001, 4444)
        + "\n"
    )
    message = _line("eni-0ccc", "10.0.0.3", "198.51.100.9", 40002, 4444)
    (flows / "cloudwatch.json").write_text(json.dumps({"message": message, "timestamp": 1}) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    fast = hunt(hunt_iocs, HuntOptions(flow=[str(flows)], rejects=str(rejects), engine="duckdb"))
    slow = hunt(hunt_iocs, HuntOptions(flow=[str(flows)], engine="python"))
    auto = hunt(hunt_iocs, HuntOptions(flow=[str(flows)]))
    assert fast.stats.flow is not None and fast.stats.flow.engine == "duckdb+python"
    assert [e.to_json() for e in fast.entities] == [e.to_json() for e in slow.entities]
    assert [e.to_json() for e in auto.entities] == [e.to_json() for e in slow.entities]
    assert {e.entity for e in fast.entities} == {"eni-0aaa", "eni-0bbb", "eni-0ccc"}
    bbb = next(e for e in fast.entities if e.entity == "eni-0bbb")
    # Under the second header the last line reads dstaddr 198.51.100.9, srcaddr 10.0.0.2, dstport 4444; read
    # with the first header it would make 10.0.0.2 the remote side.
    assert bbb.ports.values == [4444, 14444] and bbb.addresses.values == ["10.0.0.2"]
    assert fast.stats.flow.rejected == 1 and fast.stats.flow.records == slow.stats.flow.records == 5
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["source"], Path(r["file"]).name, r["line"]) for r in written] == [("flow", "bad.log", 3)]


def test_stdin_is_read_record_by_record(hunt_iocs: IocSet) -> None:
    text = V2_HEADER + "\n" + _line("eni-0ddd", "10.0.0.4", "198.51.100.9", 40000, 3333) + "\n"
    data = _hunt_json("--flow", "-", stdin=text)
    assert [e["entity"] for e in data["entities"]] == ["eni-0ddd"]
    assert data["stats"]["sources"]["flow"]["engine"] == "python"


# -- mapping and derived indicators ---------------------------------------------------------------------------


def test_cloudtrail_run_instances_tie_enis_to_instances(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = scenario
    data = _hunt_json("--flow", str(root / "vpcflow"), "--cloudtrail", str(root / "cloudtrail"))
    assert {e["entity"] for e in data["entities"]} == {i["instance_id"] for i in manifest["compromised_instances"]}
    v2 = {i["instance_id"] for i in manifest["compromised_instances"]
          if manifest["vpcs"][i["region"]]["flow_log_format"] == "v2"}
    assert {e["entity"] for e in data["entities"] if e["mapped_by"] == "cloudtrail"} == v2
    assert data["stats"]["mapped_interfaces"] >= len(manifest["compromised_instances"])


def test_resolved_ips_add_the_pools_addresses(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = scenario
    args = ("--flow", str(root / "vpcflow"), "--dns", str(root / "route53"))
    plain = _hunt_json(*args)
    assert not any(m["kind"] == "ip" for e in plain["entities"] for m in e["matches"])
    data = _hunt_json(*args, "--resolved-ips")
    assert data["iocs"]["resolved_addresses"] >= len(manifest["pools"]["accepted"])
    for inst in manifest["compromised_instances"]:
        pool = inst["mining"]["pool"]
        e = next(x for x in data["entities"] if x["entity"] == inst["instance_id"])
        ip = [m for m in e["matches"] if m["evidence"] == "flow" and m["kind"] == "ip"]
        indicators = {m["indicator"] for m in ip}
        assert pool["ip"] in indicators and indicators <= set(manifest["pools"]["ips"])
        assert all(m["source"].startswith("dns:") for m in ip)
    assert {e["entity"] for e in data["entities"]} == {i["instance_id"] for i in manifest["compromised_instances"]}


# -- output ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx"])
def test_csv_cells_never_start_a_formula(name: str) -> None:
    e = Entity("111122223333", name, "address")
    e.query_names.add(name)
    row = csv_row(e)
    assert row[1] == "'" + name
    assert all(not cell.startswith(("=", "+", "-", "@", "\t")) for cell in row)


def test_parquet_flow_logs_give_what_their_text_gives(tmp_path: Path, hunt_iocs: IocSet) -> None:
    import duckdb

    text = tmp_path / "text"
    text.mkdir()
    lines = [
        _line("eni-0aaa", "10.0.0.1", "198.51.100.9", 40000, 3333),
        _line("eni-0aaa", "198.51.100.9", "10.0.0.1", 3333, 40000),
        _line("eni-0bbb", "10.0.0.2", "140.82.112.3", 40001, 443),
        "2 111122223333 eni-0bbb - - - - - - - 1741594200 1741594260 - NODATA",
    ]
    (text / "flows.log").write_text(V2_HEADER + "\n" + "\n".join(lines) + "\n")
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in V2_HEADER.split())
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_csv('{text / 'flows.log'}', delim=' ', header=true, auto_detect=false, "
        f"columns={{{columns}}})) TO '{parquet / 'flows.parquet'}' (FORMAT PARQUET)"
    )
    from_text = hunt(hunt_iocs, HuntOptions(flow=[str(text)]))
    from_parquet = hunt(hunt_iocs, HuntOptions(flow=[str(parquet)]))
    assert [e.to_json() for e in from_parquet.entities] == [e.to_json() for e in from_text.entities]
    assert [e.entity for e in from_text.entities] == ["eni-0aaa"]
    assert from_parquet.stats.flow is not None and from_parquet.stats.flow.engine == "duckdb"
    assert from_parquet.stats.flow.records == 4


def test_a_truncated_gzip_is_read_up_to_its_break(tmp_path: Path, hunt_iocs: IocSet) -> None:
    import random

    rng = random.Random(4)
    lines = [
        _line(f"eni-0{i % 7:03d}", f"10.0.{i % 250}.{rng.randrange(1, 250)}", f"52.{rng.randrange(256)}.0.1",
              40000 + i % 20000, 3333 if i % 50 == 0 else 443)
        for i in range(60_000)
    ]
    whole = gzip.compress((V2_HEADER + "\n" + "\n".join(lines) + "\n").encode(), compresslevel=1, mtime=0)
    (tmp_path / "a.log.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "b.log.gz").write_bytes(whole)
    fast = hunt(hunt_iocs, HuntOptions(flow=[str(tmp_path)], engine="duckdb"))
    slow = hunt(hunt_iocs, HuntOptions(flow=[str(tmp_path)], engine="python"))
    auto = hunt(hunt_iocs, HuntOptions(flow=[str(tmp_path)], threads=2))
    assert fast.stats.flow is not None and slow.stats.flow is not None and auto.stats.flow is not None
    assert fast.stats.flow.engine == "duckdb+python"
    assert fast.stats.flow.reject_reasons == auto.stats.flow.reject_reasons == {"truncated gzip": 1}
    assert [e.to_json() for e in fast.entities] == [e.to_json() for e in slow.entities]
    assert [e.to_json() for e in auto.entities] == [e.to_json() for e in slow.entities]
    assert 60_000 < fast.stats.flow.records == slow.stats.flow.records < 120_000
    assert fast.stats.flow.matched == slow.stats.flow.matched > 1200


@given(values=st.lists(st.one_of(st.integers(0, 70000), st.text(min_size=1, max_size=6)), max_size=80))
def test_samples_do_not_depend_on_order(values: list[Any]) -> None:
    forward, backward = Sample(), Sample()
    forward.update(values)
    backward.update(reversed(values))
    assert forward.sorted() == backward.sorted()
    assert forward.total == backward.total == len(set(values))
    assert len(forward.sorted()) == min(len(set(values)), SAMPLE_LIMIT)


def test_every_path_is_checked_before_anything_is_read(tmp_path: Path, hunt_iocs: IocSet) -> None:
    findings = tmp_path / "findings.jsonl"
    findings.write_text("")
    with pytest.raises(InputError) as err:
        hunt(hunt_iocs, HuntOptions(findings=[str(findings)], flow=[str(tmp_path / "absent")]))
    assert err.value.file == str(tmp_path / "absent")
    with pytest.raises(InputError):
        hunt(hunt_iocs, HuntOptions(dns=["-"], flow=["-"]))
