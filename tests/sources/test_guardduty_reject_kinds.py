"""Rejects say what a record is: CloudTrail, VPC flow logs, findings in another tool's wrapper, files of text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.cli.all_commands import app
from minerwatch.compile.prefilter import Prefilter
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources.guardduty import is_plain_json_lines, records_from_value

from .conftest import Result

Read = Callable[..., Result]

CLOUDTRAIL = "a CloudTrail record, not a GuardDuty finding"
WRAPPED = "a GuardDuty finding inside another tool's wrapper"


def test_cloudtrail_records_and_log_files_are_named(read: Read, samples: Path) -> None:
    lines = samples / "cloudtrail" / "elastic-test-console-login.jsonl"
    res = read([lines])
    assert len(res.rejects) == 3 and res.records == []
    assert all(r.reason.startswith(CLOUDTRAIL + ": eventSource 'signin.amazonaws.com'") for r in res.rejects)
    assert res.stats.reasons == {CLOUDTRAIL: 3}
    log_file = next((samples / "cloudtrail").glob("awsdocs__*block02.json"))
    n = len(json.loads(log_file.read_text())["Records"])
    res = read([log_file])
    assert [r.reason for r in res.rejects] == [
        f'{CLOUDTRAIL}: a CloudTrail log file {{"Records": [...]}} with {n} record(s)'
    ]


def test_findings_under_another_tools_wrapper_are_named(real_findings: list[dict[str, Any]]) -> None:
    finding = real_findings[0]
    cases = {
        "details": {"source": "siem", "details": finding},
        "_source.aws.finding": {"_id": "x", "_source": {"aws": {"finding": finding}}},
        "message": {"@timestamp": "2024-01-01T00:00:00Z", "message": json.dumps(finding)},
    }
    for path, wrapper in cases.items():
        [reject] = records_from_value(wrapper, "w.jsonl", 1)
        assert reject.reason.startswith(WRAPPED + ": "), reject.reason
        assert f"'{path}'" in reject.reason
    # The wrapper's inner value is accepted as it is: only the outer shape was wrong.
    [record] = records_from_value(cases["details"]["details"], "w.jsonl", 1)
    assert record.flat["id"] == finding["id"]


def test_a_flow_log_line_inside_a_json_wrapper_is_named(read: Read, samples: Path) -> None:
    path = next((samples / "vpcflow").glob("*with-message-field.log"))
    res = read([path])
    assert res.rejects and all(
        r.reason.startswith("a VPC flow log line inside another tool's wrapper, not a GuardDuty finding: ")
        for r in res.rejects
    )


def test_security_hub_findings_are_not_named_here(real_findings: list[dict[str, Any]]) -> None:
    asff = {"SchemaVersion": "2018-10-08", "Id": "x", "ProductArn": "arn:aws:securityhub:::product/aws/guardduty",
            "AwsAccountId": "123456789012", "Types": ["x"], "FindingProviderFields": {"Types": ["x"]},
            "Details": {"Finding": real_findings[0]}}
    out = records_from_value(asff, "a.json", 1)
    assert all(WRAPPED not in getattr(o, "reason", "") for o in out)


def test_a_file_that_is_not_json_is_one_reject(read: Read, samples: Path, tmp_path: Path) -> None:
    flow = samples / "vpcflow"
    for path in sorted(flow.glob("elastic-*extra-samples.log")) + sorted(flow.glob("open-telemetry-*.log")):
        n = len([line for line in path.read_text().splitlines() if line.strip()])
        assert n > 1
        for prefilter in (None, Prefilter((b"CryptoCurrency",))):
            res = read([path], prefilter=prefilter)
            assert len(res.rejects) == 1, path
            [rej] = res.rejects
            assert rej.line == 1 and rej.reason.startswith("a VPC flow log, not JSON: lines 1-")
            assert res.stats.records_read == 1 and res.stats.prefiltered == 0
    source = tmp_path / "tool.py"
    source.write_text('import json\n\n\ndef f(x):\n    return {"a": x}\n\n{"x"}\n')
    text = tmp_path / "notes.txt"
    text.write_text("Findings from the audit\n\nsee the ticket\n[draft]\n")
    res = read([source, text])
    assert [(r.file, r.line, r.reason) for r in res.rejects] == [
        (str(source), 1, "source code or markup, not JSON: lines 1-7, no GuardDuty finding"),
        (str(text), 1, "plain text, not JSON: lines 1-4, no GuardDuty finding"),
    ]
    assert res.stats.reasons == {"source code or markup, not JSON": 1, "plain text, not JSON": 1}


def test_findings_after_a_text_preamble_are_read(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    path = tmp_path / "pasted.jsonl"
    path.write_bytes(b"exported by hand\nsecond line of notes\n" + b"\n".join(real_lines[:3]) + b"\nnot json\n")
    res = read([path])
    assert [r.line for r in res.records] == [3, 4, 5]
    assert [(r.line, r.reason.split(":")[0]) for r in res.rejects] == [(1, "plain text, not JSON"), (6, "invalid JSON")]
    assert res.rejects[0].reason == "plain text, not JSON: lines 1-2, no GuardDuty finding"


def test_a_line_is_never_both_skipped_and_rejected(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    """A garbage line the prefilter would skip is parsed instead: the same reason with or without the prefilter."""
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([real_lines[0], b"garbage here", b"[1, 2]", b'"text"', real_lines[1]]) + b"\n")
    plain = read([path])
    filtered = read([path], prefilter=Prefilter((b"CryptoCurrency",)))
    assert [(r.line, r.reason) for r in filtered.rejects] == [(r.line, r.reason) for r in plain.rejects]
    assert len(filtered.rejects) == 4 and not any("skipped" in r.reason for r in filtered.rejects)
    s = filtered.stats
    assert s.prefiltered + s.rejected + s.accepted == s.records_read


def test_detect_summary_counts_a_text_file_once(tmp_path: Path) -> None:
    path = tmp_path / "flow.log"
    path.write_text("".join(f"2 123456789012 eni-0a1b2c3d 10.0.0.{i} 1.2.3.4 443 3333 6 1 40 1 2 ACCEPT OK\n"
                            for i in range(50)))
    result = CliRunner().invoke(
        app, ["detect", str(path), "--state", str(tmp_path / "s.db"), "--stats-json", str(tmp_path / "st.json")]
    )
    assert result.exit_code == 0, result.output
    stats = orjson.loads((tmp_path / "st.json").read_bytes())
    assert (stats["records_read"], stats["rejected"], stats["prefiltered"]) == (1, 1, 0)
    assert stats["reject_reasons"] == {"a VPC flow log, not JSON": 1}


def test_a_text_file_is_not_split_for_parallel_reading(tmp_path: Path, real_lines: list[bytes]) -> None:
    """Read in byte ranges, a text file would give one reject per range: it is read whole, as one reject."""
    text = tmp_path / "notes.log"
    text.write_text("".join(f"line {i} of a plain log\n" for i in range(2000)))
    assert not is_plain_json_lines(str(text))
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_bytes(b"\n".join(real_lines) + b"\n")
    assert is_plain_json_lines(str(jsonl))
    opts = DetectOptions(state=str(tmp_path / "s.db"), rejects=str(tmp_path / "r.jsonl"), workers=2,
                         parallel_min_bytes=1)
    stats = detect(load_rule(DEFAULT_RULE), [str(text)], opts)
    assert (stats.records_read, stats.rejected) == (1, 1)
    assert stats.reject_reasons == {"plain text, not JSON": 1}
