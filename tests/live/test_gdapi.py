"""`watch --guardduty` with botocore's Stubber (moto does not implement ListFindings/GetFindings): real-shaped
PascalCase responses, updatedAt-sorted paging, a persisted cursor per detector and region."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.stub import Stubber

from minerwatch.generate.findings import generate_findings
from minerwatch.live.gdapi import GuardDutyApiSource
from minerwatch.live.service import WatchOptions, WatchService
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

from .conftest import Watch, client, detect_alerts, http_get, state_alerts, wait_for
from .gd_shapes import api_shape

RULE = load_rule(DEFAULT_RULE)
SORT = {"AttributeName": "updatedAt", "OrderBy": "ASC"}


def latest_versions(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the API holds: one finding per id, its latest version, sorted as ListFindings sorts them."""
    by_id: dict[str, dict[str, Any]] = {}
    for f in findings:
        if f["id"] not in by_id or f["updatedAt"] > by_id[f["id"]]["updatedAt"]:
            by_id[f["id"]] = f
    return sorted(by_id.values(), key=lambda f: (f["updatedAt"], f["id"]))


def _ms(ts: str) -> int:
    """Epoch milliseconds, rounded down, computed without floating point."""
    when = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


class Api:
    """Queue the exact calls the source must make for a list of findings, pages of ``page`` ids."""

    def __init__(self) -> None:
        self.client = boto3.client("guardduty", region_name="eu-west-1", aws_access_key_id="x",
                                   aws_secret_access_key="x")  # fmt: skip
        self.stub = Stubber(self.client)
        self.stub.activate()

    def detectors(self, ids: list[str]) -> None:
        self.stub.add_response("list_detectors", {"DetectorIds": ids}, {})

    def findings(self, detector: str, findings: list[dict[str, Any]], since: str | None, page: int = 50) -> None:
        criteria: dict[str, Any] = {}
        if since:
            criteria = {"FindingCriteria": {"Criterion": {"updatedAt": {"GreaterThanOrEqual": _ms(since)}}}}
        pages = [findings[i : i + page] for i in range(0, len(findings), page)] or [[]]
        for n, chunk in enumerate(pages):
            params: dict[str, Any] = {"DetectorId": detector, "SortCriteria": SORT, "MaxResults": page, **criteria}
            if n:
                params["NextToken"] = f"token-{n}"
            resp: dict[str, Any] = {"FindingIds": [f["id"] for f in chunk]}
            if n + 1 < len(pages):
                resp["NextToken"] = f"token-{n + 1}"
            self.stub.add_response("list_findings", resp, params)
            if chunk:
                self.stub.add_response(
                    "get_findings",
                    {"Findings": [api_shape(f) for f in chunk]},
                    {"DetectorId": detector, "FindingIds": [f["id"] for f in chunk], "SortCriteria": SORT},
                )


def _run_until(source: GuardDutyApiSource, state: Path, findings: int, log: list[str]) -> WatchService:
    service = WatchService(RULE, source, WatchOptions(state=str(state), idle_timeout=0.1, log=log.append))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: service.metrics.findings >= findings and source.pages > 0, 60, what="the findings")
    finally:
        stop.set()
        thread.join(30)
    return service


def test_guardduty_api_pages_by_updated_at_and_resumes_from_its_cursor(tmp_path: Path) -> None:
    delivered = list(generate_findings(400, 8, crypto_ratio=0.12))
    first, second = delivered[:250], delivered[250:]
    api1 = latest_versions(first)
    cursor = api1[-1]["updatedAt"]
    # The second poll starts at the cursor's millisecond: the API answers with the finding(s) already handed out
    # at that time, which must be skipped, then what changed since.
    api2 = [f for f in api1 if f["updatedAt"] == cursor] + [
        f for f in latest_versions(first + second) if f["updatedAt"] > cursor
    ]
    state, log = tmp_path / "s.db", []
    api = Api()
    api.detectors(["d-1"])
    api.findings("d-1", api1, None)
    source = GuardDutyApiSource(["eu-west-1"], client_factory=lambda _r: api.client, interval=3600)
    service = _run_until(source, state, len(api1), log)
    api.stub.assert_no_pending_responses()
    assert source.pages == -(-len(api1) // 50) and service.metrics.findings == len(api1)
    assert not [x for x in log if "failed" in x], log

    api = Api()
    api.detectors(["d-1"])
    api.findings("d-1", api2, cursor)
    again = GuardDutyApiSource(["eu-west-1"], client_factory=lambda _r: api.client, interval=3600)
    service = _run_until(again, state, len(api2) - 1, log)
    api.stub.assert_no_pending_responses()
    assert service.metrics.findings == len(api2) - 1  # the one at the cursor was skipped
    assert not [x for x in log if "failed" in x], log

    # The alerts are the backtest's over what the API showed: the latest version of each finding at each poll.
    seen = api1 + api2[1:]
    assert state_alerts(state) == detect_alerts(tmp_path, seen)


def test_each_detector_and_region_keeps_its_own_cursor(tmp_path: Path) -> None:
    findings = latest_versions(list(generate_findings(120, 2, crypto_ratio=0.2)))
    a, b = findings[:70], findings[70:]
    api = Api()
    api.detectors(["d-a", "d-b"])
    api.findings("d-a", a, None, page=50)
    api.findings("d-b", b, None, page=50)
    state, log = tmp_path / "s.db", []
    source = GuardDutyApiSource(["eu-west-1"], client_factory=lambda _r: api.client, interval=3600)
    _run_until(source, state, len(findings), log)
    api.stub.assert_no_pending_responses()
    with sqlite3.connect(state) as db:
        rows = dict(db.execute("SELECT source, position FROM live_positions"))
    assert set(rows) == {"guardduty:eu-west-1/d-a", "guardduty:eu-west-1/d-b"}
    assert orjson.loads(rows["guardduty:eu-west-1/d-a"])["updated_at"][:19] == a[-1]["updatedAt"][:19]
    assert orjson.loads(rows["guardduty:eu-west-1/d-b"])["updated_at"][:19] == b[-1]["updatedAt"][:19]
    assert state_alerts(state) == detect_alerts(tmp_path, findings)


def test_the_cli_polls_the_detectors_of_a_region(tmp_path: Path, aws_env: dict[str, str]) -> None:
    # moto implements detectors but not ListFindings: the CLI must find the detector, keep running through the
    # failing query, answer /healthz and stop cleanly.
    gd = client("guardduty", aws_env["AWS_ENDPOINT_URL"])
    detector = gd.create_detector(Enable=True)["DetectorId"]
    watch = Watch(["--guardduty", "--regions", "us-east-1", "--state", str(tmp_path / "s.db"), "--poll-interval",
                   "30", "--http", "0", "--quiet"], aws_env, tmp_path)  # fmt: skip
    try:
        base = watch.http_base()
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 60, what="/healthz")
    finally:
        assert watch.terminate() == 0, watch.stderr()
    err = watch.stderr()
    assert "watching guardduty://us-east-1" in err
    assert detector  # the detector was listed, so its findings were asked for:
    assert "GuardDuty API call failed" in err and "ListFindings operation" in err
