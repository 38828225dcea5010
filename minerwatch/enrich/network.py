"""Network section, from one pass over ``--flow`` (VPC flow logs): the instance's flows to IOC addresses or
Stratum ports in the window.

A flow record is the instance's when its ``interface-id`` is one of the instance's network interfaces, or its
``instance-id`` (version 3+) names it, or — for records without an interface — its source or destination is one
of the instance's private addresses. Its peer is the other end; the peer's port is the destination port of an
outbound record and the source port of an inbound one. A record is evidence when the peer is an IOC address
(the IOC set, or an address an IOC domain resolved to in the DNS section) or the peer's port is a Stratum port
(the bundled 3333/4444/14444 plus the rule's and IOC files' ports).

Accepted records are evidence of mining for their ``start``–``end`` span; rejected ones (a pool the network
ACL refused) are shown but add no hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from minerwatch.alerting.alerts import iso
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.iocs import IocSet
from minerwatch.enrich.sections import SourceRead, ev, make_section, mining, needles_prefilter, unavailable, where
from minerwatch.wording import count

NETWORK = "network"


def _ts(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, ValueError, OSError):
            return None
    return None


def _direction(flat: dict[str, Any], ours: dict[str, str], ports: frozenset[int]) -> str:
    """``egress`` or ``ingress``, relative to the instance."""
    fd = flat.get("flow_direction")
    if fd in ("egress", "ingress"):
        return str(fd)
    if flat.get("srcaddr") in ours:
        return "egress"
    if flat.get("dstaddr") in ours:
        return "ingress"
    # An interface's record with neither address known: the Stratum port is the pool's end.
    return "ingress" if flat.get("srcport") in ports and flat.get("dstport") not in ports else "egress"


def network_section(
    ctx: AlertContext, read: SourceRead | None, iocs: IocSet, resolved: dict[str, str]
) -> dict[str, Any]:
    if read is None:
        return unavailable(NETWORK, "no --flow given")
    if not ctx.instances:
        return unavailable(NETWORK, "the alert names no instance")
    eni_owner = ctx.eni_owner()
    ip_owner = ctx.ip_owner()
    if not eni_owner and not ip_owner:
        note = "instance interfaces and addresses unknown (no RunInstances or finding gave them); matching on "
        note += "the flow records' instance-id only"
    else:
        note = None
    ports = iocs.stratum_ports
    prefilter = needles_prefilter([*eni_owner, *ip_owner, *ctx.instances])
    peers: dict[tuple[str, int, str], dict[str, Any]] = {}
    evidence: list[dict[str, Any]] = []
    instance_records = 0
    for record in read.records(prefilter):
        flat = record.flat
        if flat.get("nodata"):
            continue
        eni = flat.get("interface_id")
        owner = eni_owner.get(eni or "")
        if owner is None and flat.get("instance_id") in ctx.instances:
            owner = flat["instance_id"]
        if owner is None and (not eni or eni == "-"):
            owner = ip_owner.get(flat.get("srcaddr") or "") or ip_owner.get(flat.get("dstaddr") or "")
        if owner is None:
            continue
        start = _ts(flat.get("start")) or flat.get("eventdate")
        end = _ts(flat.get("end")) or start
        if not isinstance(start, datetime) or not ctx.overlaps_window(start, end):
            continue
        instance_records += 1
        direction = _direction(flat, ip_owner, ports)
        if direction == "egress":
            peer, peer_port = flat.get("dstaddr"), flat.get("dstport")
        else:
            peer, peer_port = flat.get("srcaddr"), flat.get("srcport")
        why: list[str] = []
        hit = iocs.match_ip(peer) if isinstance(peer, str) else None
        if hit is not None:
            why.append(f"IOC address {hit.indicator} ({hit.source})")
        elif isinstance(peer, str) and peer in resolved:
            why.append(f"address of IOC domain {resolved[peer]} (DNS section)")
        if isinstance(peer_port, int) and peer_port in ports:
            why.append(f"Stratum port {peer_port}")
        if not why:
            continue
        action = str(flat.get("action") or "-")
        nbytes, packets = int(flat.get("bytes") or 0), int(flat.get("packets") or 0)
        key = (str(peer), int(peer_port or 0), action)
        agg = peers.setdefault(
            key,
            {
                "instance_id": owner,
                "peer": peer,
                "peer_port": peer_port,
                "action": action,
                "why": why,
                "records": 0,
                "bytes_out": 0,
                "bytes_in": 0,
                "packets_out": 0,
                "packets_in": 0,
                "first": start,
                "last": end,
                "interfaces": set(),
            },
        )
        agg["records"] += 1
        agg["bytes_out" if direction == "egress" else "bytes_in"] += nbytes
        agg["packets_out" if direction == "egress" else "packets_in"] += packets
        agg["first"], agg["last"] = min(agg["first"], start), max(agg["last"], end)
        if eni and eni != "-":
            agg["interfaces"].add(eni)
        arrow = "→" if direction == "egress" else "←"
        extra: dict[str, Any] = {"mining": mining(start, end)} if action == "ACCEPT" else {}
        evidence.append(
            ev(
                start,
                where(record),
                f"{owner}: {action} {arrow} {peer}:{peer_port} {count(nbytes, 'byte', thousands=True)} "
                f"{count(packets, 'packet', thousands=True)} ({'; '.join(why)})",
                instance_id=owner,
                end=iso(end) if end else None,
                interface_id=eni,
                direction=direction,
                srcaddr=flat.get("srcaddr"),
                srcport=flat.get("srcport"),
                dstaddr=flat.get("dstaddr"),
                dstport=flat.get("dstport"),
                protocol=flat.get("protocol"),
                peer=peer,
                peer_port=peer_port,
                bytes=nbytes,
                packets=packets,
                action=action,
                why=why,
                **extra,
            )
        )
    report = read.report()
    warnings = read.warnings()
    if note:
        warnings = [*warnings, note]
    if read.all_rejected():
        return unavailable(NETWORK, f"every record of --flow was rejected ({report['rejected']})", report)
    evidence.sort(key=lambda e: e["time"])
    peer_list = [
        {
            **{k: v for k, v in p.items() if k not in ("first", "last", "interfaces")},
            "first": iso(p["first"]),
            "last": iso(p["last"]),
            "interfaces": sorted(p["interfaces"]),
        }
        for p in sorted(peers.values(), key=lambda p: (p["first"], str(p["peer"]), p["action"]))
    ]
    accepted = [p for p in peer_list if p["action"] == "ACCEPT"]
    summary = {
        "window": ctx.window_json(),
        "instance_records": instance_records,
        "ioc_records": len(evidence),
        "accept_records": sum(p["records"] for p in accepted),
        "reject_records": sum(p["records"] for p in peer_list if p["action"] == "REJECT"),
        "peers": peer_list,
        "stratum_ports": sorted(ports),
        "interfaces": sorted(eni_owner),
        "private_ips": sorted(ip_owner),
    }
    if not peer_list:
        reason = f"no flow to an IOC address or Stratum port among the instance's {instance_records} flow records"
        return make_section(NETWORK, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    headline = "; ".join(
        f"{p['action']} {p['peer']}:{p['peer_port']} ×{p['records']} "
        f"(out {p['bytes_out']:,} B, in {p['bytes_in']:,} B, {p['first']} – {p['last']})"
        for p in peer_list
    )
    return make_section(
        NETWORK, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )
