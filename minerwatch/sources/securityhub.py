"""GuardDuty findings delivered by AWS Security Hub (ASFF) → the canonical GuardDuty finding.

Security Hub re-publishes every GuardDuty finding in the AWS Security Finding Format (``SchemaVersion``
``2018-10-08``). The GuardDuty reader recognises ASFF wherever it accepts a finding — ``aws securityhub
get-findings`` output (``{"Findings": [...]}``, told apart from GuardDuty's own PascalCase response by
``SchemaVersion``/``ProductArn``), EventBridge ``Security Hub Findings - Imported`` events (``detail.findings``),
single objects, JSON Lines — and hands each ASFF finding to :func:`to_guardduty`.

The mapping gives the finding GuardDuty itself would have delivered, so the same finding read from GuardDuty
and from Security Hub is one delivery (same ``id`` and ``updatedAt``):

==========================  =======================================================================================
``id``, ``arn``             the GuardDuty finding ARN in ``Id`` (``...:detector/<d>/finding/<id>``), its last part
``type``                    from ``Types`` (``TTPs/Command and Control/CryptoCurrency:EC2-BitcoinTool.B!DNS`` →
                            ``CryptoCurrency:EC2/BitcoinTool.B!DNS``), else a ``type`` key of ``ProductFields``
``accountId``, ``region``   ``AwsAccountId``; ``Region``, else the region of the ``Id`` ARN
``severity``                ``Severity.Product``, else a numeric ``Severity.Original``, else the lowest GuardDuty
                            score of ``Severity.Label`` (LOW 1, MEDIUM 4, HIGH 7, CRITICAL 9)
``createdAt``/``updatedAt`` ``CreatedAt``/``UpdatedAt`` written as GuardDuty writes them (UTC, milliseconds, ``Z``)
``resource``                the ``AwsEc2Instance`` resource: instance id from its ARN, ``Details.AwsEc2Instance``
                            (image, type, launch time, profile, VPC, subnet, addresses), ``Tags`` as key/value pairs
``service``                 ``ProductFields`` keys unflattened: the older flat ones (``action/...``,
                            ``additionalInfo/sample``, ``count``) and the newer ``aws/guardduty/service/...`` ones;
                            ports and counts become numbers, ``archived``/``sample`` booleans; the top-level
                            ``Sample`` flag sets ``additionalInfo.sample``
==========================  =======================================================================================

ASFF findings of any other product are refused with a reason that names the product.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

ASFF_SCHEMA_VERSION = "2018-10-08"
EVENT_DETAIL_TYPES = frozenset({"Security Hub Findings - Imported", "Security Hub Findings - Custom Action"})
GUARDDUTY_PRODUCT = re.compile(r"arn:aws[a-z-]*:securityhub:[a-z0-9-]*:[0-9]*:product/aws/guardduty")
_FINDING_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):guardduty:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"detector/(?P<detector>[^/]+)/finding/(?P<id>[^/]+)"
)
_INSTANCE_ARN = re.compile(r"arn:aws[a-z-]*:ec2:[a-z0-9-]*:[0-9]*:instance/(?P<id>i-[0-9a-zA-Z]+)")
_GD_TYPE = re.compile(r"(?P<purpose>[A-Za-z0-9]+):(?P<resource>[A-Za-z0-9]+)-(?P<rest>.+)")
_LABEL_SEVERITY = {"INFORMATIONAL": 0.0, "LOW": 1.0, "MEDIUM": 4.0, "HIGH": 7.0, "CRITICAL": 9.0}
_NEW_PREFIX = "aws/guardduty/service/"
_INT_KEYS = frozenset({"port", "count"})
_FLOAT_KEYS = frozenset({"lat", "lon"})
_BOOL_KEYS = frozenset({"archived", "sample", "blocked"})
_MAX_SEGMENTS = 16


class AsffError(ValueError):
    """An ASFF finding that cannot become a GuardDuty finding; ``key`` is the short reason used for counting."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}" if detail else key)
        self.key = key
        self.detail = detail


def is_asff(obj: Any) -> bool:
    """True for an object in ASFF (not GuardDuty's own PascalCase ``Finding``, whose SchemaVersion is 2.0)."""
    if not isinstance(obj, dict):
        return False
    return obj.get("SchemaVersion") == ASFF_SCHEMA_VERSION or ("ProductArn" in obj and "AwsAccountId" in obj)


def event_findings(obj: Any) -> list[Any] | None:
    """The ``detail.findings`` of a Security Hub EventBridge event; None for anything else."""
    if not isinstance(obj, dict) or obj.get("detail-type") not in EVENT_DETAIL_TYPES:
        return None
    detail = obj.get("detail")
    findings = detail.get("findings") if isinstance(detail, dict) else None
    if not isinstance(findings, list):
        raise AsffError("not a GuardDuty finding", f"{obj['detail-type']!r} event without a detail.findings array")
    return findings


def guardduty_type(types: Any) -> str | None:
    """The GuardDuty finding type inside ASFF ``Types`` (its last path part, ``-`` put back to ``/``)."""
    if not isinstance(types, list):
        return None
    for entry in types:
        if not isinstance(entry, str):
            continue
        match = _GD_TYPE.fullmatch(entry.rsplit("/", 1)[-1])
        if match:
            return f"{match['purpose']}:{match['resource']}/{match['rest']}"
    return None


def product_name(obj: dict[str, Any]) -> str:
    fields = obj.get("ProductFields")
    names = [obj.get("ProductName")]
    if isinstance(fields, dict):
        names.append(fields.get("aws/securityhub/ProductName"))
    names.append(obj.get("ProductArn"))
    for name in names:
        if isinstance(name, str) and name:
            return name
    return "unknown"


def to_guardduty(obj: dict[str, Any]) -> dict[str, Any]:
    """One ASFF finding of GuardDuty → the canonical camelCase GuardDuty finding. Raises :class:`AsffError`."""
    arn = obj.get("ProductArn")
    if not isinstance(arn, str) or not GUARDDUTY_PRODUCT.match(arn):
        raise AsffError(
            "not a GuardDuty finding", f"Security Hub (ASFF) finding of product {product_name(obj)!r}, not GuardDuty"
        )
    fid = obj.get("Id")
    match = _FINDING_ARN.fullmatch(fid) if isinstance(fid, str) else None
    if match is None:
        raise AsffError("bad field 'Id'", f"not a GuardDuty finding ARN: {str(fid)[:120]!r}")
    fields = obj.get("ProductFields") if isinstance(obj.get("ProductFields"), dict) else {}
    ftype = guardduty_type(obj.get("Types"))
    if ftype is None:
        ftype = next((fields[k] for k in ("type", "aws/guardduty/type") if isinstance(fields.get(k), str)), None)
    if ftype is None:
        raise AsffError("missing field 'type'", "no GuardDuty finding type in Types or ProductFields")
    account = obj.get("AwsAccountId") or match["account"]
    region = obj.get("Region") if isinstance(obj.get("Region"), str) else match["region"]
    doc: dict[str, Any] = {
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": match["partition"],
        "id": match["id"],
        "arn": fid,
        "type": ftype,
    }
    resource = _resource(obj.get("Resources"))
    if resource is not None:
        doc["resource"] = resource
    service = _service(fields)
    service.setdefault("serviceName", "guardduty")
    service.setdefault("detectorId", match["detector"])
    for asff_key, key in (("FirstObservedAt", "eventFirstSeen"), ("LastObservedAt", "eventLastSeen")):
        if key not in service and obj.get(asff_key) is not None:
            service[key] = _timestamp(obj[asff_key], asff_key)
    if obj.get("Sample") is True:  # the newer top-level flag of ASFF
        info = service.setdefault("additionalInfo", {})
        if isinstance(info, dict):
            info.setdefault("sample", True)
    doc["service"] = service
    doc["severity"] = _severity(obj.get("Severity"))
    for asff_key, key in (("CreatedAt", "createdAt"), ("UpdatedAt", "updatedAt")):
        if obj.get(asff_key) is not None:
            doc[key] = _timestamp(obj[asff_key], asff_key)
    for asff_key, key in (("Title", "title"), ("Description", "description")):
        if isinstance(obj.get(asff_key), str):
            doc[key] = obj[asff_key]
    return doc


def _severity(severity: Any) -> float | None:
    if not isinstance(severity, dict):
        return None
    product = severity.get("Product")
    if type(product) in (int, float):
        return float(product)
    original = severity.get("Original")
    if isinstance(original, str):
        try:
            return float(original)
        except ValueError:
            pass
    label = severity.get("Label")
    return _LABEL_SEVERITY.get(label.upper()) if isinstance(label, str) else None


def _timestamp(value: Any, key: str) -> str:
    """An ASFF timestamp → GuardDuty's spelling (``2024-01-02T03:04:05.678Z``) so both forms deduplicate."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # left as it is: the reader refuses it, naming the field
        if moment.tzinfo is None:
            return value
    else:
        raise AsffError(f"bad field '{key}'", f"expected a timestamp, got {type(value).__name__}")
    return format_guardduty_time(moment)


def format_guardduty_time(moment: datetime) -> str:
    """UTC with milliseconds and a ``Z``, as GuardDuty writes ``createdAt``/``updatedAt``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _resource(resources: Any) -> dict[str, Any] | None:
    if not isinstance(resources, list):
        return None
    for res in resources:
        if not isinstance(res, dict) or res.get("Type") != "AwsEc2Instance":
            continue
        details = res.get("Details")
        ec2 = details.get("AwsEc2Instance") if isinstance(details, dict) else None
        ec2 = ec2 if isinstance(ec2, dict) else {}
        rid = res.get("Id")
        match = _INSTANCE_ARN.fullmatch(rid) if isinstance(rid, str) else None
        inst: dict[str, Any] = {"instanceId": match["id"] if match else rid}
        for asff_key, key in (("ImageId", "imageId"), ("Type", "instanceType"), ("LaunchedAt", "launchTime")):
            if ec2.get(asff_key) is not None:
                inst[key] = ec2[asff_key]
        if isinstance(ec2.get("IamInstanceProfileArn"), str):
            inst["iamInstanceProfile"] = {"arn": ec2["IamInstanceProfileArn"]}
        nic: dict[str, Any] = {}
        for asff_key, key in (("VpcId", "vpcId"), ("SubnetId", "subnetId")):
            if ec2.get(asff_key) is not None:
                nic[key] = ec2[asff_key]
        ips = ec2.get("IpV4Addresses")
        if isinstance(ips, list) and ips:
            nic["privateIpAddress"] = ips[0]
        if nic:
            inst["networkInterfaces"] = [nic]
        tags = res.get("Tags")
        if isinstance(tags, dict):
            inst["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        return {"resourceType": "Instance", "instanceDetails": inst}
    return None


def _service(fields: dict[str, Any]) -> dict[str, Any]:
    """``ProductFields`` → GuardDuty's ``service``: newer ``aws/guardduty/service/...`` keys win over flat ones."""
    service: dict[str, Any] = {}
    newer: list[tuple[list[str], Any]] = []
    for key, value in fields.items():
        if not isinstance(key, str) or key.startswith("aws/securityhub/"):
            continue
        if key.startswith(_NEW_PREFIX):
            newer.append((key[len(_NEW_PREFIX) :].split("/"), value))
        elif not key.startswith("aws/") and key not in ("type",):
            _put(service, key.split("/"), value)
    for path, value in newer:
        _put(service, path, value)
    return service


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at ``path`` (numeric parts index lists); a path that clashes with what is there is skipped."""
    if not path or len(path) > _MAX_SEGMENTS or any(not part for part in path):
        return
    node: Any = target
    for part, nxt in zip(path, path[1:], strict=False):
        child_kind: type = list if nxt.isdigit() else dict
        if isinstance(node, dict):
            node = node.setdefault(part, child_kind())
        elif isinstance(node, list) and part.isdigit() and int(part) <= len(node):
            if int(part) == len(node):
                node.append(child_kind())
            node = node[int(part)]
        else:
            return
        if not isinstance(node, child_kind):
            return
    last = path[-1]
    value = _typed(last, value)
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) <= len(node):
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value


def _typed(key: str, value: Any) -> Any:
    """ProductFields values are strings: give back the number or boolean GuardDuty itself sends."""
    if not isinstance(value, str):
        return value
    try:
        if key in _INT_KEYS:
            return int(value)
        if key in _FLOAT_KEYS:
            return float(value)
    except ValueError:
        return value
    if key in _BOOL_KEYS and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


MARKERS = (ASFF_SCHEMA_VERSION.encode(), b'"class_uid"')
"""Bytes every ASFF finding (and every OCSF record) holds. A prefilter's literals are spelled as GuardDuty spells
them (``EC2/``, not ASFF's ``EC2-``), so such lines are let through to be mapped and tested, not skipped unparsed."""


class AsffAwarePrefilter:
    """A line prefilter that also accepts lines holding one of :data:`MARKERS`; keeps the ``needles`` contract."""

    def __init__(self, inner: Callable[[bytes], bool]) -> None:
        self.inner = inner
        needles = getattr(inner, "needles", None)
        self.needles: tuple[bytes, ...] | None = (*needles, *MARKERS) if needles is not None else None

    def __call__(self, line: bytes) -> bool:
        # The rule's literals first: a candidate line of a GuardDuty file holds one, so the markers are not scanned.
        return self.inner(line) or any(marker in line for marker in MARKERS)


def asff_aware(prefilter: Callable[[bytes], bool] | None) -> Callable[[bytes], bool] | None:
    return None if prefilter is None else AsffAwarePrefilter(prefilter)
