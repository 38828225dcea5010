"""GuardDuty findings delivered by Security Hub (ASFF) read as the canonical GuardDuty finding."""

from __future__ import annotations

import copy
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.compile.prefilter import Prefilter
from minerwatch.live.sqs import parse_body
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.guardduty import FindingError, finding_to_record, normalise_finding, records_from_value
from minerwatch.sources.records import Record
from minerwatch.sources.securityhub import guardduty_type

ASFF = Path(__file__).resolve().parent.parent / "data" / "asff"


@pytest.fixture(scope="module")
def hub_findings() -> list[dict[str, Any]]:
    return orjson.loads((ASFF / "securityhub-get-findings.json").read_bytes())["Findings"]


@pytest.fixture(scope="module")
def gd_findings(samples: Path) -> list[dict[str, Any]]:
    lines = (samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl").read_bytes().splitlines()
    lines += (ASFF / "guardduty-network-crypto.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


SELECTED = (
    "resource.instanceDetails.instanceId",
    "resource.instanceDetails.imageId",
    "resource.instanceDetails.instanceType",
    "service.action.actionType",
    "service.action.networkConnectionAction.remoteIpDetails.ipAddressV4",
    "service.action.networkConnectionAction.remotePortDetails.port",
    "service.action.dnsRequestAction.domain",
    "service.count",
    "service.eventFirstSeen",
    "service.eventLastSeen",
    "createdAt",
    "updatedAt",
    "title",
    "description",
)


def test_asff_findings_map_to_the_guardduty_form(
    hub_findings: list[dict[str, Any]], gd_findings: list[dict[str, Any]]
) -> None:
    for hub, gd in zip(hub_findings, gd_findings, strict=True):
        mapped = finding_to_record(normalise_finding(hub), "hub.json", 1)
        direct = finding_to_record(normalise_finding(gd), "gd.jsonl", 1)
        assert mapped.flat == direct.flat
        assert mapped.sample == direct.sample
        for path in SELECTED:
            assert _get(mapped.doc, path) == _get(gd, path), path
        tags = {t["key"]: t["value"] for t in mapped.doc["resource"]["instanceDetails"]["tags"]}
        assert tags == {t["key"]: t["value"] for t in gd["resource"]["instanceDetails"]["tags"]}


def test_network_fields_from_old_flat_and_new_product_field_keys(hub_findings: list[dict[str, Any]]) -> None:
    old = hub_findings[2]
    assert "action/networkConnectionAction/remotePortDetails/port" in old["ProductFields"]
    new = copy.deepcopy(old)
    new["ProductFields"] = {
        ("aws/guardduty/service/" + k if not k.startswith("aws/") else k): v for k, v in old["ProductFields"].items()
    }
    for asff in (old, new):
        doc = normalise_finding(asff)
        action = doc["service"]["action"]["networkConnectionAction"]
        assert action["remoteIpDetails"]["ipAddressV4"] == "198.51.100.77"
        assert action["remotePortDetails"]["port"] == 3333  # a number, as GuardDuty sends it
        assert doc["service"]["count"] == 3 and doc["service"]["archived"] is False
    # where both spellings are present the newer key wins
    both = copy.deepcopy(old)
    both["ProductFields"]["aws/guardduty/service/action/networkConnectionAction/remotePortDetails/port"] = "14444"
    assert normalise_finding(both)["service"]["action"]["networkConnectionAction"]["remotePortDetails"]["port"] == 14444


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["TTPs/Command and Control/CryptoCurrency:EC2-BitcoinTool.B!DNS"], "CryptoCurrency:EC2/BitcoinTool.B!DNS"),
        (["TTPs/Impact/Impact:EC2-BitcoinDomainRequest.Reputation"], "Impact:EC2/BitcoinDomainRequest.Reputation"),
        (
            [
                "Effects/Data Exfiltration",
                "TTPs/Credential Access/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration.OutsideAWS",
            ],
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        ),
        (["Software and Configuration Checks/Vulnerabilities/CVE"], None),
        ("TTPs/Impact/Impact:EC2-X", None),
    ],
)
def test_type_from_types(types: Any, expected: str | None) -> None:
    assert guardduty_type(types) == expected


def test_type_from_product_fields_when_types_has_none(hub_findings: list[dict[str, Any]]) -> None:
    asff = copy.deepcopy(hub_findings[2])
    asff["Types"] = ["Unusual Behaviors/VM"]
    with pytest.raises(FindingError, match="type"):
        normalise_finding(asff)
    asff["ProductFields"]["type"] = "CryptoCurrency:EC2/BitcoinTool.B"
    assert normalise_finding(asff)["type"] == "CryptoCurrency:EC2/BitcoinTool.B"


@pytest.mark.parametrize(("severity", "expected"), [
    ({"Product": 5.5, "Label": "HIGH"}, 5.5),
    ({"Original": "8", "Label": "MEDIUM"}, 8.0),
    ({"Label": "HIGH", "Normalized": 70}, 7.0),
    ({"Label": "CRITICAL"}, 9.0),
    ({"Label": "LOW"}, 1.0),
])
def test_severity(hub_findings: list[dict[str, Any]], severity: dict[str, Any], expected: float) -> None:
    asff = copy.deepcopy(hub_findings[2])
    asff["Severity"] = severity
    assert finding_to_record(normalise_finding(asff), "f", 1).flat["severity"] == expected


def test_timestamps_written_as_guardduty_writes_them(hub_findings: list[dict[str, Any]]) -> None:
    asff = copy.deepcopy(hub_findings[2])
    asff["UpdatedAt"] = "2024-03-11T04:45:02.118+02:00"
    asff["CreatedAt"] = "2024-03-11T02:20:31Z"
    doc = normalise_finding(asff)
    assert doc["updatedAt"] == "2024-03-11T02:45:02.118Z" and doc["createdAt"] == "2024-03-11T02:20:31.000Z"
    asff["UpdatedAt"] = "yesterday"
    with pytest.raises(FindingError, match="updatedAt"):
        finding_to_record(normalise_finding(asff), "f", 1)


def test_other_products_are_rejected_naming_the_product(read: Callable[..., Any]) -> None:
    res = read([ASFF / "securityhub-inspector-finding.json"])
    assert res.records == [] and len(res.rejects) == 1
    assert "'Inspector'" in res.rejects[0].reason and "Security Hub" in res.rejects[0].reason
    assert res.stats.reasons == {"not a GuardDuty finding": 1}


def test_bad_id_is_rejected(hub_findings: list[dict[str, Any]]) -> None:
    asff = copy.deepcopy(hub_findings[2])
    asff["Id"] = "arn:aws:securityhub:us-east-1:111122223333:finding/abc"
    with pytest.raises(FindingError, match="'Id'"):
        normalise_finding(asff)


def test_every_delivery_form(read: Callable[..., Any], hub_findings: list[dict[str, Any]], tmp_path: Path) -> None:
    ids = [normalise_finding(f)["id"] for f in hub_findings]
    lines = tmp_path / "hub.jsonl.gz"
    lines.write_bytes(gzip.compress(b"\n".join(orjson.dumps(f) for f in hub_findings) + b"\n"))
    single = tmp_path / "one.json"
    single.write_bytes(orjson.dumps(hub_findings[0], option=orjson.OPT_INDENT_2))
    compact = tmp_path / "compact.json"
    compact.write_bytes(orjson.dumps({"Findings": hub_findings}))
    assert read([ASFF / "securityhub-get-findings.json"]).ids == ids
    assert read([compact]).ids == ids
    assert read([lines]).ids == ids
    assert read([single]).ids == ids[:1]
    event = read([ASFF / "securityhub-imported-event.json"])
    assert event.ids == ids[2:] and event.stats.records_read == 1


def test_guardduty_pascal_case_response_still_read_as_guardduty(
    read: Callable[..., Any], gd_findings: list[dict[str, Any]], tmp_path: Path
) -> None:
    # {"Findings": [...]} of `aws guardduty get-findings` collides with Security Hub's: told apart by SchemaVersion
    path = tmp_path / "gd.json"
    path.write_bytes(orjson.dumps({"Findings": [to_pascal(f) for f in gd_findings]}))
    res = read([path])
    assert res.rejects == [] and res.ids == [f["id"] for f in gd_findings]
    assert res.records[2].doc["service"]["action"]["networkConnectionAction"]["remotePortDetails"]["port"] == 3333


def test_prefilter_spelled_as_guardduty_lets_asff_lines_through(
    read: Callable[..., Any], hub_findings: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "hub.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(f) for f in hub_findings) + b"\n")
    prefilter = Prefilter((b"CryptoCurrency:EC2/BitcoinTool.B",))
    for block in (1 << 20, 64):
        res = read([path], prefilter=prefilter, line_block_bytes=block)
        assert [r.flat["type"] for r in res.records][-1] == "CryptoCurrency:EC2/BitcoinTool.B"
        assert len(res.records) == 3 and res.stats.prefiltered == 0


def test_sqs_message_with_a_security_hub_event() -> None:
    body = (ASFF / "securityhub-imported-event.json").read_text()
    out = parse_body(body, "sqs://queue")
    assert [type(x) for x in out] == [Record]
    assert out[0].flat["id"] == "5ec6e3e1c1a24b0f9e6b2f0a7d6c1a22"
    assert records_from_value(orjson.loads(body), "q", None)[0].flat == out[0].flat
