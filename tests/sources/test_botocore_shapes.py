"""PascalCase ⇄ camelCase through botocore's GuardDuty model, checked against the model and real findings."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.session
import pytest

from minerwatch.sources.botocore_shapes import MAX_DEPTH, finding_shape, to_camel, to_pascal
from minerwatch.sources.guardduty import normalise_finding


def _examples(max_depth: int = 7) -> tuple[Any, Any]:
    """A PascalCase instance of every member of ``Finding`` (to a depth) and its expected wire form.

    Built with botocore's ``ServiceModel`` API (``serialization['name']``), independently of the code under
    test, which compiles the raw service JSON itself.
    """
    model = botocore.session.get_session().get_service_model("guardduty")

    def build(shape: Any, depth: int, path: str) -> tuple[Any, Any]:
        if shape.type_name == "structure":
            pascal, camel = {}, {}
            if depth < max_depth:
                for name, member in shape.members.items():
                    wire = member.serialization.get("name") or name[0].lower() + name[1:]
                    p, c = build(member, depth + 1, f"{path}.{name}")
                    pascal[name], camel[wire] = p, c
            return pascal, camel
        if shape.type_name == "list":
            p, c = build(shape.member, depth + 1, path + "[]")
            return [p], [c]
        if shape.type_name == "map":
            p, c = build(shape.value, depth + 1, path + "{}")
            return {"MapKeyKeptAsIs": p}, {"MapKeyKeptAsIs": c}
        value = {"integer": 7, "long": 7, "double": 7.5, "boolean": True}.get(shape.type_name, path)
        return value, value

    return build(model.shape_for("Finding"), 0, "Finding")


def test_every_model_member_is_renamed_to_its_wire_name() -> None:
    pascal, camel = _examples()
    assert to_camel(pascal) == camel
    assert to_pascal(camel) == pascal


def test_wire_names_that_differ_beyond_the_first_letter(real_findings: list[dict[str, Any]]) -> None:
    with_codes = next(
        f for f in real_findings if f["resource"].get("instanceDetails", {}).get("productCodes")
    )
    pascal = to_pascal(with_codes)
    code = pascal["Resource"]["InstanceDetails"]["ProductCodes"][0]
    assert set(code) == {"Code", "ProductType"}  # productCodeId / productCodeType on the wire
    assert to_camel(pascal)["resource"]["instanceDetails"]["productCodes"][0] == {
        "productCodeId": "GeneratedFindingProductCodeId",
        "productCodeType": "GeneratedFindingProductCodeType",
    }
    k8s = {"Service": {"Action": {"KubernetesApiCallAction": {"SourceIps": ["203.0.113.9"]}}}}
    assert to_camel(k8s) == {
        "service": {"action": {"kubernetesApiCallAction": {"sourceIPs": ["203.0.113.9"]}}}
    }


def test_tags_lists_follow_the_model(real_findings: list[dict[str, Any]]) -> None:
    finding = next(f for f in real_findings if f["resource"].get("instanceDetails", {}).get("tags"))
    pascal = to_pascal(finding)
    tags = pascal["Resource"]["InstanceDetails"]["Tags"]
    assert tags and all(set(t) == {"Key", "Value"} for t in tags)
    back = to_camel(pascal)["resource"]["instanceDetails"]["tags"]
    assert back == finding["resource"]["instanceDetails"]["tags"]
    assert all(set(t) == {"key", "value"} for t in back)


def test_round_trip_on_every_real_finding(real_findings: list[dict[str, Any]]) -> None:
    for finding in real_findings:
        original = copy.deepcopy(finding)
        pascal = to_pascal(finding)
        assert "AccountId" in pascal and "accountId" not in pascal
        assert to_camel(pascal) == original
        assert normalise_finding(pascal) == original
        assert finding == original  # inputs are not modified


def test_camel_input_is_left_as_it_is(real_findings: list[dict[str, Any]]) -> None:
    for finding in real_findings:
        assert to_camel(finding) == finding


def test_map_keys_are_data_not_member_names() -> None:
    behavior = {
        "Service": {"Detection": {"Anomaly": {"Unusual": {"Behavior": {"ProfileX": {"UserName": {}}}}}}}
    }
    out = to_camel(behavior)
    assert out["service"]["detection"]["anomaly"]["unusual"]["behavior"] == {"ProfileX": {"UserName": {}}}


def test_keys_unknown_to_the_model_lose_their_capital_recursively() -> None:
    out = to_camel(
        {"Id": "x", "NewField": {"InnerKey": [{"Deep": 1}]}, "Service": {"AdditionalInfo": {"Sample": True}}}
    )
    assert out == {
        "id": "x",
        "newField": {"innerKey": [{"deep": 1}]},
        "service": {"additionalInfo": {"sample": True}},
    }


def test_datetimes_become_utc_iso_strings() -> None:
    plus2 = timezone(timedelta(hours=2))
    out = to_camel(
        {
            "CreatedAt": datetime(2024, 1, 1, 2, 0, tzinfo=plus2),
            "UpdatedAt": datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
            "Service": {"EventFirstSeen": datetime(2024, 1, 1)},
        }
    )
    assert out == {
        "createdAt": "2024-01-01T00:00:00Z",
        "updatedAt": "2024-01-01T00:00:00.123000Z",
        "service": {"eventFirstSeen": "2024-01-01T00:00:00Z"},
    }


def test_deep_nesting_is_a_value_error_not_a_recursion_error() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 50):
        deep = {"K": deep}
    with pytest.raises(ValueError, match="levels of nesting"):
        to_camel({"Id": "x", "Extra": deep})


def test_the_model_is_compiled_once() -> None:
    assert finding_shape() is finding_shape()
