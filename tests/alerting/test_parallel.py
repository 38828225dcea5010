"""Reading one large file in parallel byte ranges gives exactly what one sequential read gives."""

from __future__ import annotations

import orjson

from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.alerting.state import StateStore
from minerwatch.generate.findings import generate_findings
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE


def test_parallel_ranges_equal_a_sequential_read(tmp_path):
    findings = list(generate_findings(3000, seed=8, crypto_ratio=0.1))
    lines = [orjson.dumps(f) for f in findings]
    # Rejects spread over the file, so their line numbers must be made absolute across ranges.
    for at in (5, 900, 1700, 2600):
        lines.insert(at, b'{"type": "CryptoCurrency:EC2/BitcoinTool.B", "broken": ')
    lines.insert(2000, b"\xff\xfe not utf-8 CryptoCurrency")
    data = tmp_path / "big.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    rule = load_rule(DEFAULT_RULE)

    def run(name: str, workers: int) -> tuple[dict, list[dict], bytes]:
        opts = DetectOptions(
            state=str(tmp_path / f"{name}.db"),
            rejects=str(tmp_path / f"{name}.rejects.jsonl"),
            workers=workers,
            parallel_min_bytes=1,
        )
        stats = detect(rule, [str(data)], opts).to_json()
        stats.pop("seconds")
        stats.pop("rejects_file")
        rejects = [
            {k: v for k, v in orjson.loads(x).items() if k != "run_id"}
            for x in (tmp_path / f"{name}.rejects.jsonl").read_bytes().splitlines()
        ]
        return stats, rejects, orjson.dumps(StateStore(opts.state).list_alerts())

    seq = run("seq", 1)
    par = run("par", 3)
    assert seq[0]["rejected"] == 5 and seq[0]["alerts_new"] > 5
    assert [r["line"] for r in seq[1]] == [6, 901, 1701, 2001, 2602]
    assert par == seq
