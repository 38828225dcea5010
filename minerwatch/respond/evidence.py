"""Evidence capture: the instance as AWS describes it, saved as JSON files with a SHA-256 manifest.

Folder: ``<root>/<alert_id>/`` where root is a local path or ``s3://bucket/prefix``. Files:

============================  ======================================================================
``instance.json``             DescribeInstances
``volumes.json``              DescribeVolumes of every attached EBS volume
``network-interfaces.json``   DescribeNetworkInterfaces of every ENI
``security-groups.json``      DescribeSecurityGroups of every group on those ENIs
``instance-profile.json``     DescribeIamInstanceProfileAssociations, GetInstanceProfile
``user-data.json``            DescribeInstanceAttribute userData, with the decoded text
``console-output.json``       GetConsoleOutput, with the decoded text
``alert.json``                the alert record and its enrichment sections, from the state store
``manifest.json``             every evidence file of the response: name, size, SHA-256, the requests behind
                              it and the step that wrote it
============================  ======================================================================

Each AWS file holds the requests (with their AWS request ids) and the responses as returned. User data and
console output are attacker-controlled text: stored as data, decoded with replacement characters, never run.
A file already captured for the alert is not captured again, so a retry after a failure keeps the state as it
was first seen.

Later steps store their own evidence files in the same folder (:func:`store_file`: live forensics, the network
ACLs before the deny, the IAM users before the reset). Each step records its files' entries in the response
journal; :func:`stored_files` gathers them from there and :func:`write_manifest` rewrites ``manifest.json`` over
all of them whenever a step stored one, so the manifest lists every file and :func:`verify_local` checks them all.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from minerwatch.alerting.alerts import iso
from minerwatch.aws.session import AwsError, request_id
from minerwatch.respond.discover import Inventory, decode_b64, profile_association_call
from minerwatch.respond.plan import ApiCall

MANIFEST = "manifest.json"
MANIFEST_STEP = "manifest"
"""The response journal's row of the manifest last written: its SHA-256, the evidence location, and the files
(name → SHA-256), errors and completeness it lists."""
ALERT_FILE = "alert.json"
TEXT_LIMIT = 1 << 20
"""Decoded user data / console text kept in the JSON (the base64 original is always kept whole)."""


class Caller(Protocol):
    def call(self, call: ApiCall, values: dict[str, Any] | None = None) -> dict[str, Any]: ...


def to_json_bytes(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Location:
    """Where one alert's evidence goes: a local folder or an S3 bucket and key prefix."""

    uri: str
    bucket: str | None = None
    prefix: str = ""

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def uri_of(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def key_of(self, name: str) -> str:
        return f"{self.prefix}{name}"


def location(root: str, alert_id: str) -> Location:
    if root.startswith("s3://"):
        bucket, _, prefix = root[5:].partition("/")
        if not bucket:
            raise AwsError(f"evidence location {root!r} names no bucket")
        prefix = prefix.strip("/")
        key_prefix = f"{prefix}/{alert_id}/" if prefix else f"{alert_id}/"
        return Location(f"s3://{bucket}/{key_prefix}", bucket=bucket, prefix=key_prefix)
    return Location(str(Path(root).expanduser().resolve() / alert_id))


def _profile_name(arn: str | None) -> str | None:
    # arn:aws:iam::123456789012:instance-profile/path/name → name
    if not arn or ":instance-profile/" not in arn:
        return None
    return arn.rsplit("/", 1)[-1] or None


def evidence_reads(inv: Inventory) -> list[tuple[str, list[ApiCall]]]:
    """The files to capture and the reads behind each, from the current inventory."""
    r, iid = inv.region, inv.instance_id
    files: list[tuple[str, list[ApiCall]]] = [
        ("instance.json", [ApiCall("ec2", "DescribeInstances", {"InstanceIds": [iid]}, r)])
    ]
    if inv.volumes:
        vols = [v for v, _ in inv.volumes]
        files.append(("volumes.json", [ApiCall("ec2", "DescribeVolumes", {"VolumeIds": vols}, r)]))
    if inv.enis:
        enis = [e.id for e in inv.enis]
        files.append(
            ("network-interfaces.json", [ApiCall("ec2", "DescribeNetworkInterfaces", {"NetworkInterfaceIds": enis}, r)])
        )
    if inv.group_ids():
        files.append(
            ("security-groups.json", [ApiCall("ec2", "DescribeSecurityGroups", {"GroupIds": inv.group_ids()}, r)])
        )
    profile_calls = [profile_association_call(iid, r)]
    name = _profile_name((inv.profile or {}).get("Arn"))
    if name:
        profile_calls.append(ApiCall("iam", "GetInstanceProfile", {"InstanceProfileName": name}))
    files.append(("instance-profile.json", profile_calls))
    files.append(
        (
            "user-data.json",
            [ApiCall("ec2", "DescribeInstanceAttribute", {"InstanceId": iid, "Attribute": "userData"}, r)],
        )
    )
    files.append(("console-output.json", [ApiCall("ec2", "GetConsoleOutput", {"InstanceId": iid}, r)]))
    return files


def put_call(loc: Location, name: str, body: bytes | str) -> ApiCall:
    """The S3 upload of one evidence file (``body`` is a placeholder string in a plan)."""
    params: dict[str, Any] = {
        "Bucket": loc.bucket,
        "Key": loc.key_of(name),
        "Body": body,
        "ContentType": "application/json",
    }
    if isinstance(body, bytes):
        params["Metadata"] = {"sha256": sha256(body)}
    return ApiCall("s3", "PutObject", params)


def planned_uploads(loc: Location, names: Iterable[str]) -> list[ApiCall]:
    """The S3 uploads of the evidence files ``names`` and then of the manifest, as a plan shows them (``<name>``
    for the body); none for a local folder."""
    if not loc.is_s3:
        return []
    return [put_call(loc, n, f"<{n}>") for n in (*names, MANIFEST)]


def planned_calls(inv: Inventory, loc: Location) -> list[ApiCall]:
    reads = evidence_reads(inv)
    return [c for _, calls in reads for c in calls] + planned_uploads(loc, [*(n for n, _ in reads), ALERT_FILE])


def _decoded(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"bytes": len(raw), "sha256": sha256(raw)}
    if raw[:2] == b"\x1f\x8b":
        out["gzip"] = True
        try:
            raw = gzip.decompress(raw)[: TEXT_LIMIT + 1]
        except (OSError, EOFError):
            out["gzip_error"] = "not a valid gzip stream"
            return out
    out["text"] = raw[:TEXT_LIMIT].decode("utf-8", errors="replace")
    if len(raw) > TEXT_LIMIT:
        out["truncated"] = True
    return out


def _without_meta(resp: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


@dataclass
class Capture:
    """The outcome of one capture pass."""

    location: Location
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.errors


def _store(caller: Caller, loc: Location, name: str, data: bytes) -> dict[str, Any]:
    entry = {"name": name, "bytes": len(data), "sha256": sha256(data), "uri": loc.uri_of(name)}
    if loc.is_s3:
        resp = caller.call(put_call(loc, name, data))
        entry["etag"] = resp.get("ETag")
    else:
        folder = Path(loc.uri)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / name)
    return entry


def store_file(
    caller: Caller,
    loc: Location,
    name: str,
    data: bytes,
    *,
    step: str,
    requests: Iterable[str] = (),
    captured_at: str | None = None,
) -> dict[str, Any]:
    """Write one evidence file. Its entry (name, bytes, sha256, uri, the requests behind it as ``service:Operation``,
    when and by which step) goes in the step's journal detail, from where :func:`stored_files` puts it in the
    manifest."""
    entry = _store(caller, loc, name, data)
    entry["requests"] = list(requests)
    entry["captured_at"] = captured_at or iso_now()
    entry["step"] = step
    return entry


def capture(
    caller: Caller,
    inv: Inventory,
    loc: Location,
    context: dict[str, Any],
    step: str,
    already: dict[str, dict[str, Any]] | None = None,
) -> Capture:
    """Capture every evidence file not in ``already`` (``context`` is written as ``alert.json``). The manifest is
    written afterwards, over every file the response stored (:func:`write_manifest`)."""
    out = Capture(loc, files=dict(already or {}))
    for name, reads in evidence_reads(inv):
        if name in out.files:
            continue
        requests, responses = [], []
        try:
            for call in reads:
                resp = caller.call(call)
                requests.append({**call.to_json(), "request_id": request_id(resp)})
                responses.append(_without_meta(resp))
        except AwsError as exc:
            out.errors[name] = exc.message
            continue
        doc: dict[str, Any] = {"captured_at": iso_now(), "requests": requests, "responses": responses}
        if name == "user-data.json":
            doc["user_data"] = _decoded(decode_b64((responses[0].get("UserData") or {}).get("Value")))
        elif name == "console-output.json":
            doc["console_output"] = _decoded(decode_b64(responses[0].get("Output")))
        try:
            out.files[name] = store_file(
                caller, loc, name, to_json_bytes(doc), step=step, captured_at=doc["captured_at"],
                requests=[f"{r['service']}:{r['operation']}" for r in requests],
            )  # fmt: skip
        except (AwsError, OSError) as exc:
            out.errors[name] = str(exc)
    if ALERT_FILE not in out.files:
        try:
            out.files[ALERT_FILE] = store_file(caller, loc, ALERT_FILE, to_json_bytes(context), step=step)
        except (AwsError, OSError) as exc:
            out.errors[ALERT_FILE] = str(exc)
    return out


def stored_files(steps: Mapping[str, tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Every evidence file the response's steps recorded (``steps``: the journal, step id → (status, detail)): a
    step's ``files`` (name → entry) and its single ``evidence`` entry, each naming the step that wrote it. A
    rolled-back step's files stay: they are still in the evidence location."""
    out: dict[str, dict[str, Any]] = {}
    for step_id, (_status, detail) in sorted(steps.items()):
        files = detail.get("files")
        entries = list(files.values()) if isinstance(files, dict) else []
        entries.append(detail.get("evidence"))
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry.get("sha256"):
                out[entry["name"]] = {**entry, "step": entry.get("step") or step_id}
    return out


def write_manifest(
    caller: Caller,
    loc: Location,
    header: dict[str, Any],
    files: Mapping[str, dict[str, Any]],
    errors: dict[str, str],
    complete: bool,
) -> str:
    """(Re)write ``manifest.json``: ``header`` (alert, instance, account, actor), whether the evidence step
    captured every file, its errors, and the entries of ``files`` by name. Returns its SHA-256 (raises AwsError or
    OSError when the write fails)."""
    manifest = {
        **header,
        "written_at": iso_now(),
        "complete": complete,
        "files": [files[n] for n in sorted(files)],
        "errors": errors,
    }
    data = to_json_bytes(manifest)
    _store(caller, loc, MANIFEST, data)
    return sha256(data)


def iso_now() -> str:
    return iso(datetime.now(UTC))


def verify_local(folder: str | Path) -> list[str]:
    """Problems with a local evidence folder: missing files and SHA-256 mismatches (empty when it is intact)."""
    folder = Path(folder)
    try:
        manifest = orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"{MANIFEST}: {exc}"]
    problems = []
    for entry in manifest.get("files") or []:
        path = folder / str(entry.get("name"))
        if not path.is_file():
            problems.append(f"{entry.get('name')}: missing")
        elif sha256(path.read_bytes()) != entry.get("sha256"):
            problems.append(f"{entry.get('name')}: SHA-256 does not match the manifest")
    return problems
