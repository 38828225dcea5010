"""DNS section, from one pass over ``--dns`` (Route 53 Resolver query logs): the instance's lookups of IOC
domains in the window, with counts, first/last, query types, answers.

A query is the instance's when ``srcids.instance`` names it or, failing that, when its source address is one of
the instance's private addresses (in its VPC when both are known). Domains match the IOC set on whole labels
(``xmr.nanopool.org`` matches ``nanopool.org``, ``notnanopool.org`` does not). The addresses those lookups
returned are handed to the network section: a flow to a pool's resolved address is a flow to an IOC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minerwatch.alerting.alerts import iso
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.iocs import IocSet
from minerwatch.enrich.sections import SourceRead, ev, make_section, mining, needles_prefilter, unavailable, where
from minerwatch.wording import count

DNS = "dns"


def _answers(doc: dict[str, Any]) -> list[str]:
    answers = doc.get("answers")
    if not isinstance(answers, list):
        return []
    return [a["Rdata"] for a in answers if isinstance(a, dict) and isinstance(a.get("Rdata"), str)]


def dns_section(ctx: AlertContext, read: SourceRead | None, iocs: IocSet) -> tuple[dict[str, Any], dict[str, str]]:
    """The DNS section and the addresses IOC lookups resolved to (address → domain)."""
    resolved: dict[str, str] = {}
    if read is None:
        return unavailable(DNS, "no --dns given"), resolved
    if not ctx.instances:
        return unavailable(DNS, "the alert names no instance"), resolved
    ip_owner = ctx.ip_owner()
    vpc_of = {i: f.vpc_id for i, f in ctx.instances.items()}
    prefilter = needles_prefilter([*ctx.instances, *ip_owner])
    per_domain: dict[str, dict[str, Any]] = {}
    evidence: list[dict[str, Any]] = []
    instance_queries = 0
    for record in read.records(prefilter):
        flat = record.flat
        owner = flat.get("instance_id") if flat.get("instance_id") in ctx.instances else None
        if owner is None and not flat.get("instance_id"):
            candidate = ip_owner.get(flat.get("srcaddr") or "")
            vpc = vpc_of.get(candidate or "")
            if candidate and (vpc is None or not flat.get("vpc_id") or flat.get("vpc_id") == vpc):
                owner = candidate
        if owner is None:
            continue
        t = flat.get("eventdate")
        if not isinstance(t, datetime) or not ctx.in_window(t):
            continue
        instance_queries += 1
        name = flat.get("query_name") or ""
        hit = iocs.match_domain(name)
        if hit is None:
            continue
        answers = _answers(record.doc)
        for a in answers:
            # Answers of CNAME chains are names; keep addresses only.
            if a.replace(".", "").isdigit() or ":" in a:
                resolved.setdefault(a, name)
        entry = per_domain.setdefault(
            name,
            {
                "query_name": name,
                "indicator": hit.indicator,
                "ioc_source": hit.source,
                "instance_id": owner,
                "count": 0,
                "first": t,
                "last": t,
                "query_types": set(),
                "rcodes": set(),
                "answers": set(),
            },
        )
        entry["count"] += 1
        entry["first"], entry["last"] = min(entry["first"], t), max(entry["last"], t)
        entry["query_types"].add(flat.get("query_type"))
        entry["rcodes"].add(flat.get("rcode"))
        entry["answers"].update(answers)
        evidence.append(
            ev(
                t,
                where(record),
                f"{owner}: DNS {flat.get('query_type')} {name} → {', '.join(answers) or flat.get('rcode')} "
                f"(IOC {hit.indicator})",
                instance_id=owner,
                query_name=name,
                query_type=flat.get("query_type"),
                rcode=flat.get("rcode"),
                answers=answers,
                indicator=hit.indicator,
                ioc_source=hit.source,
                srcaddr=flat.get("srcaddr"),
                mining=mining(t),
            )
        )
    report = read.report()
    warnings = read.warnings()
    if read.all_rejected():
        return unavailable(DNS, f"every record of --dns was rejected ({report['rejected']})", report), {}
    evidence.sort(key=lambda e: e["time"])
    domains = [
        {
            **{k: v for k, v in d.items() if k not in ("first", "last", "query_types", "rcodes", "answers")},
            "first": iso(d["first"]),
            "last": iso(d["last"]),
            "query_types": sorted(x for x in d["query_types"] if x),
            "rcodes": sorted(x for x in d["rcodes"] if x),
            "answers": sorted(d["answers"]),
        }
        for d in sorted(per_domain.values(), key=lambda d: (d["first"], d["query_name"]))
    ]
    summary = {
        "window": ctx.window_json(),
        "instance_queries": instance_queries,
        "ioc_lookups": len(evidence),
        "domains": domains,
        "resolved_addresses": dict(sorted(resolved.items())),
    }
    if not domains:
        reason = f"no lookup of an IOC domain among the instance's {count(instance_queries, 'query')} in the window"
        return make_section(DNS, "empty", reason=reason, summary=summary, source=report, warnings=warnings), resolved
    headline = "; ".join(f"{d['query_name']} ×{d['count']} ({d['first']} – {d['last']})" for d in domains)
    return (
        make_section(
            DNS, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
        ),
        resolved,
    )
