"""Load a rule document (Markdown, sections by ``##`` heading) into a ``Rule``.

The document is tokenised with markdown-it-py; every block keeps its source line through the tokens'
``.map``, so errors and warnings point at ``file:line``. Each ``##`` section is kept verbatim in
``Rule.sections``; the known ones are also mapped to typed fields (DESIGN §3). An unknown section is a
warning, never dropped.

Rule id: the file name without ``.md``/``.markdown``/``.txt``, lower-cased with ``_`` turned into ``-``,
when that name starts with a letter and holds only letters, digits, ``-`` and ``_`` (``aws-guardduty-
crypto-mining.md`` → ``aws-guardduty-crypto-mining``). Otherwise, and for text without a path, the slug
of the ``# Title`` (``000_874a6878789f665b.txt`` → ``aws-guardduty-cryptocurrency-mining-detection``).

Throttling: ``N alert(s) per <entity> per <N> <seconds|minutes|hours|days>``; the entity names the key
(instance → accountid, instance_id; account → accountid; resource → accountid, resource_id; any other
entity → accountid, <entity>_id), and an explicit ``Throttle key: a, b`` overrides it. Without a usable
throttling line the rule gets 1 alert per accountid per hour, with a warning.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from minerwatch.durations import unit_seconds
from minerwatch.errors import RuleError
from minerwatch.rules.document import Ctx, Item, Section, normalise_text, split_sections
from minerwatch.rules.model import (
    AlertConfig,
    FalsePositives,
    Iocs,
    LintAck,
    Mitre,
    MitreRef,
    Rule,
    RuleTest,
    Severity,
    Throttle,
)
from minerwatch.yamlfile import compose_and_load

__all__ = ["load_rule", "parse_rule", "parse_throttle", "rule_id_for"]

DEFAULT_THROTTLE = Throttle(count=1, key=["accountid"], window_seconds=3600)

# MITRE ATT&CK Enterprise tactics: a document naming a tactic id differently gets a warning.
ATTACK_TACTICS: dict[str, str] = {
    "TA0043": "Reconnaissance",
    "TA0042": "Resource Development",
    "TA0001": "Initial Access",
    "TA0002": "Execution",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0008": "Lateral Movement",
    "TA0009": "Collection",
    "TA0011": "Command and Control",
    "TA0010": "Exfiltration",
    "TA0040": "Impact",
}

_SEVERITY_WORDS: dict[str, Severity] = {
    "informational": "informational",
    "information": "informational",
    "info": "informational",
    "low": "low",
    "medium": "medium",
    "med": "medium",
    "moderate": "medium",
    "high": "high",
    "critical": "critical",
    "crit": "critical",
}

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "ten": 10, "twelve": 12, "twenty": 20, "thirty": 30}

_NUM = r"\d+(?:\.\d+)?|" + "|".join(_NUMBER_WORDS)
_THROTTLE_RE = re.compile(
    rf"^\s*(?P<count>{_NUM})\s+alerts?\s+(?:per|for\s+each|each)\s+(?P<entity>.+?)\s+"
    rf"(?:per|every|each|in|within)\s+(?:(?P<n>{_NUM})\s*)?"
    r"(?P<unit>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b",
    re.IGNORECASE,
)

_ENTITY_KEYS: dict[str, list[str]] = {
    "instance": ["accountid", "instance_id"],
    "account": ["accountid"],
    "resource": ["accountid", "resource_id"],
}

_MITRE_REF_RE = re.compile(r"([^,;()]+?)\s*\(\s*(TA\d{4}|T\d{4}(?:\.\d{3})?)\s*\)")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOMAIN_RE = re.compile(r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
_PORT_WORD_RE = re.compile(r"\bports?\b", re.IGNORECASE)
_FROM_RE = re.compile(r"^\s*from\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


# --------------------------------------------------------------------------- ids


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def rule_id_for(path: str | Path | None, title: str) -> str:
    """The rule id for a file name and title (see the module docstring)."""
    if path is not None:
        name = Path(path).name
        stem = re.sub(r"\.(md|markdown|txt)$", "", name, flags=re.IGNORECASE)
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", stem):
            return _slug(stem)
    return _slug(title)


# --------------------------------------------------------------------------- section kinds


def _section_kind(title: str) -> str | None:
    norm = " ".join(title.lower().split())
    if norm == "severity":
        return "severity"
    if norm in ("description", "summary", "overview"):
        return "description"
    if norm.startswith("mitre"):
        return "mitre"
    if norm == "query" or norm.endswith(" query"):
        return "query"
    if norm.startswith("alert configuration") or norm in ("alerting", "alert", "alert settings"):
        return "alert"
    if norm.startswith("false positive"):
        return "false_positives"
    if norm.startswith("tuning"):
        return "tuning"
    if norm in ("iocs", "ioc", "indicators of compromise") or (
        ("domains" in norm or "ips" in norm) and ("monitor" in norm or "pool" in norm)
    ):
        return "iocs"
    if norm.startswith("recommended action"):
        return "recommended_actions"
    if norm.startswith("response playbook") or norm == "playbook":
        return "response_playbook"
    if norm.startswith("investigation"):
        return "investigation_steps"
    if norm.startswith("enrichment"):
        return "enrichment"
    if "indicators" in norm:
        return "indicators"
    if norm.startswith("cost impact"):
        return "cost_impact"
    if norm.startswith("prevention"):
        return "prevention"
    if norm.startswith("lint"):
        return "lint_acks"
    if norm in ("notes", "note"):
        return "notes"
    if norm in ("tests", "rule tests", "test cases"):
        return "tests"
    if norm in ("references", "reference"):
        return "references"
    return None


_LIST_FIELDS = {
    "recommended_actions",
    "response_playbook",
    "investigation_steps",
    "enrichment",
    "indicators",
    "cost_impact",
    "prevention",
    "notes",
}


# --------------------------------------------------------------------------- field parsers


def _severity_of(text: str) -> Severity | None:
    m = re.match(r"\s*([A-Za-z]+)", text)
    return _SEVERITY_WORDS.get(m.group(1).lower()) if m else None


def _parse_severity_section(ctx: Ctx, sec: Section) -> Severity:
    para = next((b for b in sec.blocks if b.kind in ("paragraph", "heading") and b.text), None)
    if para is None:
        ctx.error(f"section '{sec.title}' has no severity", sec.line)
    text = para.strong[0] if para.strong else para.text
    sev = _severity_of(text)
    if sev is None:
        ctx.error(
            f"severity {text!r} not recognised (expected informational, low, medium, high or critical)",
            para.line,
            ctx.col_of(para.line, text),
        )
    return sev


def _parse_mitre(ctx: Ctx, sec: Section) -> Mitre:
    mitre = Mitre()
    items = [it for b in sec.blocks if b.kind == "list" for it in b.items]
    if not items:
        ctx.warn(f"section '{sec.title}' has no list items; MITRE ATT&CK mapping left empty", sec.line)
    seen: set[str] = set()
    for item in items:
        label, sep, value = item.text.partition(":")
        label_l = label.strip().lower()
        if not sep or not ("tactic" in label_l or "technique" in label_l):
            ctx.warn(f"MITRE ATT&CK item not understood: {item.text!r}", item.line)
            continue
        refs = _MITRE_REF_RE.findall(value)
        if not refs:
            ctx.warn(f"no ATT&CK ids like 'Name (TA0040)' or 'Name (T1496)' in {item.text!r}", item.line)
            continue
        for name, ref_id in refs:
            name = name.strip()
            is_tactic = ref_id.startswith("TA")
            if is_tactic != ("tactic" in label_l):
                kind = "tactic" if is_tactic else "technique"
                ctx.warn(f"{ref_id} is a {kind} id but is listed under {label.strip()!r}", item.line)
            if ref_id in seen:
                continue
            seen.add(ref_id)
            if is_tactic:
                known = ATTACK_TACTICS.get(ref_id)
                if known is None:
                    ctx.warn(f"{ref_id} is not a MITRE ATT&CK Enterprise tactic id", item.line)
                elif known.lower() != name.lower():
                    ctx.warn(
                        f"{ref_id} is '{known}' in MITRE ATT&CK; the document names it '{name}'", item.line,
                        "mitre-name",
                    )
                mitre.tactics.append(MitreRef(id=ref_id, name=name))
            else:
                mitre.techniques.append(MitreRef(id=ref_id, name=name))
    return mitre


def _number(text: str) -> float:
    low = text.lower()
    return float(_NUMBER_WORDS[low]) if low in _NUMBER_WORDS else float(text)


def _entity_key(entity: str) -> list[str]:
    name = re.sub(r"[^a-z0-9]+", "_", entity.lower()).strip("_")
    name = re.sub(r"^(each|every|single|one|an?|the)_", "", name)
    if name.endswith("s") and name[:-1] in _ENTITY_KEYS:
        name = name[:-1]
    if name in _ENTITY_KEYS:
        return list(_ENTITY_KEYS[name])
    if name in ("accountid", "account_id"):
        return ["accountid"]
    if name.endswith("_id"):
        return ["accountid", name]
    return ["accountid", f"{name}_id"]


def parse_throttle(text: str) -> Throttle | None:
    """``"1 alert per instance per 2 hours"`` → Throttle(1, [accountid, instance_id], 7200); else None."""
    m = _THROTTLE_RE.match(text)
    if m is None:
        return None
    count = _number(m.group("count"))
    n = _number(m.group("n")) if m.group("n") else 1.0
    window = n * (unit_seconds(m.group("unit")) or 0)
    if count < 1 or count != int(count) or window < 1:
        return None
    return Throttle(count=int(count), key=_entity_key(m.group("entity")), window_seconds=round(window))


def _parse_key_list(ctx: Ctx, text: str, line: int) -> list[str] | None:
    names = [n.strip(" `'\"()[]") for n in re.split(r"[,\s]+", text) if n.strip(" `'\"()[]")]
    bad = [n for n in names if not _IDENT_RE.fullmatch(n)]
    if not names or bad:
        ctx.warn(f"throttle key {text.strip()!r} is not a list of column names", line)
        return None
    return [n.lower() for n in names]


def _parse_alert(ctx: Ctx, sec: Section) -> AlertConfig:
    alert = AlertConfig()
    throttle: Throttle | None = None
    explicit_key: list[str] | None = None
    throttle_seen = False
    for item in (it for b in sec.blocks if b.kind == "list" for it in b.items):
        label, sep, value = item.text.partition(":")
        label_l = " ".join(label.lower().split())
        value = value.strip()
        if not sep:
            ctx.warn(f"alert setting not understood (expected 'Name: value'): {item.text!r}", item.line)
        elif label_l == "trigger":
            alert.trigger = value
        elif label_l in ("throttling", "throttle"):
            throttle_seen = True
            throttle = parse_throttle(value)
            if throttle is None:
                ctx.warn(
                    f"throttling {value!r} not understood (expected 'N alert(s) per <entity> per <N> "
                    "<seconds|minutes|hours|days>'); using 1 alert per account per hour",
                    item.line,
                )
        elif label_l in ("throttle key", "throttling key", "throttle keys", "throttling keys"):
            explicit_key = _parse_key_list(ctx, value, item.line)
        elif label_l == "severity":
            sev = _severity_of(value)
            if sev is None:
                ctx.error(f"alert severity {value!r} not recognised", item.line, ctx.col_of(item.line, value))
            alert.severity = sev
        elif label_l == "priority":
            m = re.fullmatch(r"\s*P([1-5])\b.*", value, re.IGNORECASE)
            if m is None:
                ctx.warn(f"priority {value!r} not recognised (expected P1..P5)", item.line)
            else:
                alert.priority = f"P{m.group(1)}"
        else:
            ctx.warn(f"unknown alert setting '{label.strip()}' ignored", item.line)
    if not throttle_seen:
        ctx.warn("no Throttling in Alert Configuration; using 1 alert per account per hour", sec.line)
    base = throttle or DEFAULT_THROTTLE
    alert.throttle = Throttle(
        count=base.count, key=explicit_key or list(base.key), window_seconds=base.window_seconds
    )
    return alert


def _classify_ioc(token: str) -> tuple[str, str] | None:
    token = token.strip(" \t`'\"()[]<>;,")
    if not token:
        return None
    try:
        if "/" in token:
            return "ip", str(ipaddress.ip_network(token, strict=False))
        return "ip", str(ipaddress.ip_address(token))
    except ValueError:
        pass
    domain = token.lower().rstrip(".")
    if _DOMAIN_RE.fullmatch(domain) and len(domain) <= 253:
        return "domain", domain
    return None


def _parse_iocs(ctx: Ctx, sec: Section) -> Iocs:
    iocs = Iocs()
    entries: list[Item] = [it for b in sec.blocks if b.kind == "list" for it in b.items]
    for b in sec.blocks:
        if b.kind in ("fence", "code"):
            entries += [Item(text=t, line=b.line + 1 + n) for n, t in enumerate(b.content.splitlines())]
    for item in entries:
        found = False
        port_word = _PORT_WORD_RE.search(item.text)
        if port_word:
            for num in re.findall(r"\b\d{1,5}\b", item.text[port_word.end() :]):
                port = int(num)
                if 1 <= port <= 65535:
                    found = True
                    if port not in iocs.ports:
                        iocs.ports.append(port)
        else:
            for token in re.split(r"[\s,;|]+", item.text):
                hit = _classify_ioc(token)
                if hit is None:
                    continue
                found = True
                target = iocs.ips if hit[0] == "ip" else iocs.domains
                if hit[1] not in target:
                    target.append(hit[1])
        if not found and item.text.strip():
            ctx.warn(f"IOC entry not understood (no domain, IP, CIDR or port): {item.text!r}", item.line)
    return iocs


_ACK_RE = re.compile(r"`?([a-z][a-z0-9-]*)`?\s*:\s*(\S.*)", re.DOTALL)


def _parse_lint_acks(ctx: Ctx, sec: Section) -> list[LintAck]:
    """``- code: why`` items: a warning the document means to have, with the reason (required)."""
    acks: list[LintAck] = []
    items = [it for b in sec.blocks if b.kind == "list" for it in b.items]
    if not items:
        ctx.warn(f"section '{sec.title}' has no list items; no lint warning is acknowledged", sec.line)
    for item in items:
        match = _ACK_RE.fullmatch(item.text.strip())
        if match is None:
            ctx.warn(f"lint acknowledgement not understood (expected '- code: reason'): {item.text!r}", item.line)
            continue
        acks.append(LintAck(code=match.group(1), reason=" ".join(match.group(2).split()), line=item.line))
    return acks


def _list_texts(ctx: Ctx, sec: Section) -> list[str]:
    items = [it.text for b in sec.blocks if b.kind == "list" for it in b.items]
    if not items:
        ctx.warn(f"section '{sec.title}' has no list items; kept as text only", sec.line)
    return items


def _parse_false_positives(sec: Section, fp: FalsePositives, start_in_tuning: bool) -> None:
    tuning = start_in_tuning
    for b in sec.blocks:
        if b.kind in ("paragraph", "heading") and re.match(r"\s*tuning\b", b.text, re.IGNORECASE):
            tuning = True
        elif b.kind == "list":
            (fp.tuning if tuning else fp.considerations).extend(it.text for it in b.items)


def _parse_query(ctx: Ctx, sec: Section) -> tuple[str, int, int]:
    code = [b for b in sec.blocks if b.kind in ("fence", "code")]
    if not code:
        ctx.error(f"section '{sec.title}' has no fenced code block with the query", sec.line)
    block = code[0]
    if len(code) > 1:
        ctx.warn(f"section '{sec.title}' has {len(code)} code blocks; the first is the query", code[1].line)
    query = block.content.rstrip()
    if block.kind == "fence":
        first_line = block.line + 1
        fence_src = ctx.source_line(block.line) or ""
        col_offset = len(fence_src) - len(fence_src.lstrip(" "))
    else:
        first_line = block.line
        src = ctx.source_line(block.line) or ""
        col_offset = len(src) - len(src.lstrip(" ")) - (len(query) - len(query.lstrip(" ")))
    if not query.strip():
        ctx.error("the query is empty", block.line)
    return query, first_line, max(col_offset, 0)


def _check_relative(ctx: Ctx, value: Any, what: str, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        ctx.error(f"test case {what} must be a non-empty string", line)
    p = PurePosixPath(value.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", value):
        ctx.error(f"test case {what} {value!r} must be a path inside the rule's folder", line)
    return value


def _count(ctx: Ctx, expect: dict[str, Any], name: str, line: int) -> int:
    value = expect.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        ctx.error(f"test case expect.{name} must be a non-negative integer, got {value!r}", line)
    return value


def _parse_tests(ctx: Ctx, sec: Section) -> list[RuleTest]:
    fences = [b for b in sec.blocks if b.kind == "fence"]
    if not fences:
        ctx.warn(f"section '{sec.title}' has no fenced YAML block of test cases", sec.line)
        return []
    tests: list[RuleTest] = []
    names: set[str] = set()
    for block in fences:
        base = block.line + 1  # first content line of the fence
        try:
            data, node = compose_and_load(block.content)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            if exc.context_mark is not None and (mark is None or mark.line >= block.content.count("\n")):
                mark = exc.context_mark  # "got <stream end>": point at what was left open instead
            line = base + mark.line if mark is not None else block.line
            ctx.error(f"test cases are not valid YAML: {exc.problem or exc}", line)
        except yaml.YAMLError as exc:
            ctx.error(f"test cases are not valid YAML: {exc}", block.line)
        if data is None:
            ctx.warn("empty test block", block.line)
            continue
        if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
            ctx.error("the Tests block must be a YAML list of cases", base)
        for item_node, case in zip(node.value, data, strict=True):
            line = base + item_node.start_mark.line
            if not isinstance(case, dict):
                ctx.error("a test case must be a mapping with name, file and expect", line)
            unknown = sorted(set(map(str, case)) - {"name", "file", "expect", "allowlist"})
            if unknown:
                ctx.warn(f"unknown test case keys ignored: {', '.join(unknown)}", line)
            name = case.get("name")
            if not isinstance(name, str) or not name.strip():
                ctx.error("test case needs a non-empty 'name'", line)
            if name in names:
                ctx.error(f"duplicate test case name {name!r}", line)
            names.add(name)
            file = _check_relative(ctx, case.get("file"), "file", line)
            allowlist = case.get("allowlist")
            if allowlist is not None:
                allowlist = _check_relative(ctx, allowlist, "allowlist", line)
            expect = case.get("expect")
            if not isinstance(expect, dict):
                ctx.error(f"test case {name!r} needs 'expect: {{matches: N, alerts: N}}'", line)
            test = RuleTest(
                name=name,
                file=file,
                expect_matches=_count(ctx, expect, "matches", line),
                expect_alerts=_count(ctx, expect, "alerts", line),
                allowlist=allowlist,
                line=line,
            )
            if ctx.file is not None:
                for rel in (test.file, test.allowlist):
                    if rel is not None and not (Path(ctx.file).parent / rel).is_file():
                        ctx.warn(f"test case {name!r}: file {rel!r} not found", line)
            tests.append(test)
    return tests


# --------------------------------------------------------------------------- entry points


def parse_rule(text: str, path: str | None = None) -> Rule:
    """Parse rule document text. ``path`` is used for the rule id, messages and fixture paths."""
    text = normalise_text(text.removeprefix("\ufeff"))
    ctx = Ctx(text, path)
    title, title_line, preamble, sections = split_sections(ctx, text)

    rule_id = rule_id_for(path, title)
    if not rule_id:
        ctx.error(f"cannot derive a rule id from the title {title!r}", title_line)

    fields: dict[str, Any] = {}
    severity: Severity | None = None
    query: tuple[str, int, int] | None = None
    alert: AlertConfig | None = None
    fp = FalsePositives()
    tests: list[RuleTest] = []
    for sec in sections:
        kind = _section_kind(sec.title)
        if kind is None:
            ctx.warn(f"unknown section '{sec.title}' kept as text", sec.line)
        elif kind == "severity":
            severity = _parse_severity_section(ctx, sec)
        elif kind == "description":
            paras = [b.text for b in sec.blocks if b.kind == "paragraph"]
            fields["description"] = "\n\n".join(paras) if paras else sec.body
        elif kind == "mitre":
            fields["mitre"] = _parse_mitre(ctx, sec)
        elif kind == "query":
            if query is not None:
                ctx.warn(f"second query section '{sec.title}' kept as text; the first one is used", sec.line)
            else:
                query = _parse_query(ctx, sec)
        elif kind == "alert":
            alert = _parse_alert(ctx, sec)
        elif kind in ("false_positives", "tuning"):
            _parse_false_positives(sec, fp, start_in_tuning=kind == "tuning")
        elif kind == "iocs":
            fields["iocs"] = _parse_iocs(ctx, sec)
        elif kind == "tests":
            tests.extend(_parse_tests(ctx, sec))
        elif kind == "lint_acks":
            fields.setdefault("lint_acknowledgements", []).extend(_parse_lint_acks(ctx, sec))
        elif kind in _LIST_FIELDS:
            fields.setdefault(kind, []).extend(_list_texts(ctx, sec))

    if query is None:
        ctx.error("rule document has no '## ... Query' section with a fenced query", title_line)
    if alert is None:
        ctx.warn("no '## Alert Configuration' section; using 1 alert per account per hour", None)
        alert = AlertConfig(throttle=dataclasses.replace(DEFAULT_THROTTLE))
    if severity is None:
        if alert.severity is None:
            ctx.error("rule document has no '## Severity' section and no alert severity", title_line)
        severity = alert.severity
    elif alert.severity is not None and alert.severity != severity:
        ctx.warn(
            f"alert severity '{alert.severity}' differs from the rule severity '{severity}'",
            next((s.line for s in sections if _section_kind(s.title) == "alert"), None),
        )
    if alert.severity is None:
        alert.severity = severity

    query_text, query_line, col_offset = query
    table_match = _FROM_RE.match(query_text.lstrip("\n"))
    return Rule(
        id=rule_id,
        name=title,
        path=path,
        severity=severity,
        priority=alert.priority,
        query=query_text,
        query_line=query_line,
        query_col_offset=col_offset,
        table=table_match.group(1).lower() if table_match else None,
        alert=alert,
        false_positives=fp,
        preamble=preamble,
        sections={s.key: s.body for s in sections},
        section_lines={s.key: s.line for s in sections},
        tests=tests,
        warnings=ctx.warnings,
        **fields,
    )


def load_rule(path: str | Path) -> Rule:
    """Read and parse a rule document file (UTF-8); a shipped rule may be named by its id instead of a path."""
    from minerwatch.rules.shipped import resolve_rule_path

    path = resolve_rule_path(path)
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RuleError(f"cannot read rule document: {exc.strerror or exc}", file=name) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RuleError("rule document is not valid UTF-8", file=name, line=line) from exc
    return parse_rule(text, name)
