"""The default flow engine (``auto``): local text files swept one per task on forked workers, Parquet with DuckDB.
It gives what the one-process per-record sweep gives — entities, records, matches, rejects in the same order
with the same lines, the time span — whatever the number of workers, on records built to trip the IOC
prefilter (a port number in the bytes or packets column, an address that is a prefix of an IOC address) and on
malformed lines that hold no IOC literal, which are still rejected and counted."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.hunt import flows as flows_module
from minerwatch.sources.vpcflow import V2_FIELDS

HEADER = " ".join(V2_FIELDS)
IOCS = IocSet.of(ips=["1.2.3.4", "192.0.2.0/24"], ports=[3333, 4444], source="test")


def _v2(src: str, dst: str, sport: int | str, dport: int | str, packets: int | str = 5, size: int | str = 400,
        eni: str = "eni-0aaa", start: int = 1_700_000_000) -> str:
    return f"2 111111111111 {eni} {src} {dst} {sport} {dport} 6 {packets} {size} {start} {start + 60} ACCEPT OK"


EDGES = [
    _v2("10.0.0.1", "1.2.3.40", 51000, 443, eni="eni-prefix"),  # 1.2.3.4 is a prefix of it: no match
    _v2("10.0.0.2", "11.2.3.4", 51000, 443, eni="eni-suffix"),  # and a suffix of this one: no match
    _v2("10.0.0.3", "8.8.8.8", 51000, 443, packets=3333, size=4444, eni="eni-counts"),  # ports in counts: no
    _v2("10.0.0.4", "8.8.8.8", 51000, 33334, eni="eni-longer"),  # a longer port holding the digits: no match
    _v2("10.0.0.5", "192.0.20.1", 51000, 443, eni="eni-net-text"),  # the network's text is a prefix: no match
    _v2("10.0.0.6", "1.2.3.4", 51000, 443, eni="eni-ip"),  # match: the address
    _v2("1.2.3.4", "10.0.0.7", 443, 51000, eni="eni-ip-src"),  # match: as source
    _v2("10.0.0.8", "192.0.2.9", 51000, 443, eni="eni-net"),  # match: in the network
    _v2("10.0.0.9", "8.8.8.8", 51000, 3333, eni="eni-port"),  # match: destination port
    _v2("10.0.0.10", "8.8.8.8", 4444, 443, eni="eni-port-src"),  # match: source port
    _v2("10.0.0.11", "8.8.8.8", 51000, "03333", eni="eni-zero"),  # match: read as 3333
]
MATCHED = {"eni-ip", "eni-ip-src", "eni-net", "eni-port", "eni-port-src", "eni-zero"}
MALFORMED = [  # no IOC literal in any of them: still rejects
    "2 111111111111 eni-0bbb 10.0.0.20 8.8.8.8 51000 443 6 5 400 1700000000 1700000060 ACCEPT",  # 13 fields
    _v2("10.0.0.21", "8.8.8.8", 51000, 443, size="4x0"),  # not an integer
    _v2("10.0.0.22", "8.8.8.8", 51000, 443).replace("ACCEPT", "ACC\xff\xfe"),  # written as bytes: bad UTF-8
]


def _write(folder: Path, name: str, lines: list[str], gz: bool = True) -> str:
    text = "".join(line + "\n" for line in lines).encode("latin-1")
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
    return str(path)


def _hunt(paths: list[str], tmp: Path, engine: str, threads: int | None = None, iocs: IocSet = IOCS) -> Any:
    rejects = tmp / f"rejects-{engine}-{threads}.jsonl"
    result = hunt(iocs, HuntOptions(flow=paths, engine=engine, threads=threads, span=True, rejects=str(rejects)))
    data = result.to_json()
    flow = data["stats"]["sources"]["flow"]
    return {
        "entities": data["entities"],
        "flow": {k: v for k, v in flow.items() if k != "engine"},
        "rejects": rejects.read_text(),
        "engine": flow.get("engine"),
    }


@pytest.fixture
def pool_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The start methods of the worker pools the sweep opened."""
    opened: list[str] = []
    real = multiprocessing.get_context

    def counting(method: str | None = None) -> Any:
        opened.append(str(method))
        return real(method)

    monkeypatch.setattr(flows_module.multiprocessing, "get_context", counting)
    return opened


def test_edge_records_and_malformed_lines_on_two_workers(tmp_path: Path, pool_starts: list[str]) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    _write(folder, "a.log", [HEADER, *EDGES, *MALFORMED])
    _write(folder, "b.log", [*EDGES[5:], MALFORMED[0], *EDGES[:5]], gz=False)
    _write(folder, "c.log", [HEADER, *MALFORMED[1:], *EDGES])
    auto = _hunt([str(folder)], tmp_path, "auto", threads=2)
    assert pool_starts == ["fork"]
    one = _hunt([str(folder)], tmp_path, "python")
    assert auto["entities"] == one["entities"]
    assert auto["flow"] == one["flow"]
    assert auto["rejects"] == one["rejects"]  # the same rejects, in file order, with their lines
    assert auto["engine"] == "python"
    flow = auto["flow"]
    assert flow["files"] == 3 and flow["records"] == 3 * len(EDGES) + 2 * len(MALFORMED)
    assert flow["rejected"] == 2 * len(MALFORMED)
    assert flow["reject_reasons"] == {"bad field 'bytes'": 2, "invalid UTF-8": 2, "wrong field count": 2}
    assert {e["entity"] for e in auto["entities"]} == MATCHED
    assert flow["matched"] == 3 * len(MATCHED)
    assert flow["first"] == "2023-11-14T22:13:20Z"
    lines = [int(x.split('"line":')[1].split(",")[0]) for x in auto["rejects"].splitlines()]
    assert lines == [13, 14, 15, 7, 2, 3]


def test_parquet_goes_to_duckdb_and_text_to_the_workers(tmp_path: Path, pool_starts: list[str]) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    text = _write(folder, "a.log", [HEADER, *EDGES])
    _write(folder, "b.log", [HEADER, *EDGES[5:]])
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv(?, delim=' ', header=true, all_varchar=true)) TO '{folder / 'c.parquet'}' "
        "(FORMAT parquet)",
        [text],
    )
    con.close()
    auto = _hunt([str(folder)], tmp_path, "auto", threads=2)
    one = _hunt([str(folder)], tmp_path, "python")
    assert auto["engine"] == "duckdb+python" and pool_starts == ["fork"]
    assert auto["entities"] == one["entities"] and auto["flow"] == one["flow"]
    assert auto["flow"]["records"] == 2 * len(EDGES) + len(EDGES[5:])


def test_one_worker_or_one_file_sweeps_here(tmp_path: Path, pool_starts: list[str]) -> None:
    path = _write(tmp_path, "a.log", [HEADER, *EDGES, *MALFORMED])
    one_file = _hunt([path], tmp_path, "auto", threads=2)
    assert pool_starts == []
    assert one_file["entities"] == _hunt([path], tmp_path, "python")["entities"]


RECORD = st.builds(
    _v2,
    st.sampled_from(["10.0.0.1", "1.2.3.4", "1.2.3.40", "192.0.2.1", "192.0.20.1"]),
    st.sampled_from(["8.8.8.8", "1.2.3.4", "11.2.3.4", "192.0.2.200"]),
    st.sampled_from([443, 3333, 4444, 51000, 33334]),
    st.sampled_from([443, 3333, 4444, 51000]),
    st.sampled_from([1, 3333, 4444]),
    st.sampled_from([40, 3333, 44444]),
    st.sampled_from(["eni-0a", "eni-0b", "eni-0c"]),
    st.integers(1_700_000_000, 1_700_100_000),
)
LINE = st.one_of(RECORD, RECORD, RECORD, st.sampled_from([*MALFORMED, HEADER, ""]))


@settings(max_examples=25, deadline=None)
@given(files=st.lists(st.lists(LINE, max_size=40), min_size=2, max_size=5), gz=st.booleans())
def test_two_workers_merge_to_what_one_process_gives(files: list[list[str]], gz: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mw-hunt-local-") as tmp:
        folder = Path(tmp) / "flows"
        folder.mkdir()
        for i, lines in enumerate(files):
            _write(folder, f"f{i:02d}.log", lines, gz=gz)
        two = _hunt([str(folder)], Path(tmp), "auto", threads=2)
        one = _hunt([str(folder)], Path(tmp), "auto", threads=1)
        ref = _hunt([str(folder)], Path(tmp), "python")
    assert two["entities"] == one["entities"] == ref["entities"]
    assert two["flow"] == one["flow"] == ref["flow"]
    assert two["rejects"] == one["rejects"] == ref["rejects"]


def test_a_folder_with_a_non_regular_entry_is_read_as_the_reader_reads_it(
    tmp_path: Path, pool_starts: list[str]
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    _write(folder, "a.log", [HEADER, *EDGES])
    _write(folder, "b.log", [HEADER, *EDGES])
    os.mkfifo(folder / "c.pipe")  # opening it could block: the reader rejects it unread
    auto = _hunt([str(folder)], tmp_path, "auto", threads=2)
    one = _hunt([str(folder)], tmp_path, "python")
    assert pool_starts == []  # read in this process, whole
    assert auto["entities"] == one["entities"] and auto["flow"] == one["flow"] and auto["rejects"] == one["rejects"]
    assert auto["flow"]["reject_reasons"] == {"not a regular file": 1}
