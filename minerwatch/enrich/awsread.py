"""What the AWS Config and Amazon Inspector sections share: reading the JSON the AWS CLI prints for an API (the
offline input), paging the API itself, and turning a service's refusal into a reason a responder can act on.

*Offline input*: each path is a file (``.json``, ``.json.gz``) or a folder of them, each holding one document as
the CLI prints it — ``{"configurationItems": [...]}`` or ``{"findings": [...]}`` (``nextToken`` ignored) — or a
bare list of those items, or JSON Lines of such documents. A document that is not JSON, or an item that is not an
object, is a reject (file, line, reason) in the run's rejects file; the good items of the same file stay.
Evidence read from a file names its item as ``file#key[i]`` (the CLI's output is one indented document).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.alerts import parse_iso
from minerwatch.enrich.sections import RejectLog
from minerwatch.errors import InputError
from minerwatch.sources.records import Reject

DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException"})


@dataclass(frozen=True, slots=True)
class Item:
    doc: dict[str, Any]
    source: str


def _files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith((".json", ".json.gz", ".jsonl")))
    if not p.exists():
        raise InputError("does not exist", file=path)
    return [p]


def _documents(raw: bytes) -> Iterator[tuple[int, Any | orjson.JSONDecodeError]]:
    """(line, parsed document or the parse error): one document per file, else JSON Lines — but only when the
    first line is a document by itself, so a truncated indented document is one reject, not one per line."""
    try:
        yield 1, orjson.loads(raw)
        return
    except orjson.JSONDecodeError as whole:
        lines = raw.split(b"\n")
        try:
            orjson.loads(next(x for x in lines if x.strip()))
        except (orjson.JSONDecodeError, StopIteration):
            yield 1, whole
            return
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield n, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield n, exc


def read_cli_output(
    paths: Sequence[str], option: str, key: str, rejects: RejectLog
) -> tuple[list[Item], dict[str, Any]]:
    """The items under ``key`` of every document in ``paths``, and a report shaped like the log readers' one.

    Raises :class:`InputError` for a path that does not exist."""
    items: list[Item] = []
    report: dict[str, Any] = {"option": option, "paths": list(paths), "files": 0, "records_read": 0,
                              "accepted": 0, "rejected": 0}  # fmt: skip
    reasons: dict[str, int] = {}
    first: list[dict[str, Any]] = []

    def reject(file: str, line: int | None, why: str, detail: str) -> None:
        report["rejected"] += 1
        reasons[why] = reasons.get(why, 0) + 1
        if len(first) < 5:
            first.append({"file": file, "line": line, "reason": detail})
        rejects.write(option, Reject(file, line, detail))

    for path in paths:
        for f in _files(path):
            report["files"] += 1
            name = str(f)
            try:
                raw = gzip.decompress(f.read_bytes()) if f.name.endswith(".gz") else f.read_bytes()
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                report["records_read"] += 1
                reject(name, None, "unreadable file", f"unreadable file: {exc}")
                continue
            index = 0
            for line, doc in _documents(raw):
                if isinstance(doc, orjson.JSONDecodeError):
                    report["records_read"] += 1
                    reject(name, line, "malformed JSON", f"malformed JSON: {doc}")
                    continue
                listed = doc.get(key) if isinstance(doc, dict) else doc
                if not isinstance(listed, list):
                    report["records_read"] += 1
                    reject(name, line, f"no {key} list", f"expected {{{key!r}: [...]}} as the AWS CLI prints it")
                    continue
                for value in listed:
                    report["records_read"] += 1
                    if not isinstance(value, dict):
                        reject(name, line, "not an object", f"{key}[{index}] is not a JSON object")
                    else:
                        report["accepted"] += 1
                        items.append(Item(value, f"{name}#{key}[{index}]"))
                    index += 1
    if reasons:
        report["reject_reasons"] = dict(sorted(reasons.items()))
        report["rejects_file"] = rejects.path
        report["first_rejects"] = first
    return items, report


def file_warnings(report: dict[str, Any]) -> list[str]:
    if not report.get("rejected"):
        return []
    reasons = ", ".join(f"{k} ×{n}" for k, n in report.get("reject_reasons", {}).items())
    dest = f"; written to {report['rejects_file']}" if report.get("rejects_file") else ""
    return [f"{report['rejected']} record(s) of {report['option']} rejected ({reasons}){dest}"]


def instant(value: Any) -> datetime | None:
    """A timestamp as boto3 gives it (``datetime``), as the CLI prints it (ISO 8601 text, or epoch seconds with
    ``cli_timestamp_format = none``); ``None`` otherwise."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code else None
    return None


def refusal(exc: BaseException, action: str) -> str:
    """The reason a section gives when an API call failed: access denied (naming the permission), or the
    service's error code and message."""
    code = error_code(exc)
    message = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or exc)
    if code in DENIED:
        return f"access denied to {action}: {message}"
    if code:
        return f"{action} failed: {code}: {message}"
    return f"{action} failed: {type(exc).__name__}: {exc}"


def session_or_default(session: Any) -> Any:
    if session is None:
        import boto3  # on demand: only the API options need it

        session = boto3.Session()
    return session


def client(session: Any, service: str, region: str | None) -> Any:
    return session.client(service, region_name=region) if region else session.client(service)
