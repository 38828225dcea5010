"""Case-insensitive key resolution for GuardDuty finding documents, from botocore's GuardDuty service model.

A query may spell a document path in any case (``resource.instancedetails.INSTANCEID``); records carry the
wire names (``resource.instanceDetails.instanceId``). The shape tree of ``Finding`` tells, level by level,
which wire name a segment means:

- a structure member matches by its ``locationName`` (or member name) compared case-insensitively;
- a list is transparent for naming: its element shape continues the walk (at run time a key applied to a
  list is still null — only the spelling is resolved here);
- the key right below a map shape is data and kept as written; the walk continues with the map's value;
- a segment the model does not know is kept as written, and so is everything below it.

The model is read once per process, on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

_STRUCT, _LIST, _MAP, _SCALAR = "structure", "list", "map", "scalar"


@dataclass(slots=True, eq=False)
class ShapeNode:
    kind: str
    members: dict[str, tuple[str, ShapeNode]] = field(default_factory=dict)
    """Structure: lower-cased wire name and member name → (wire name, member node)."""
    to_wire: dict[str, tuple[str, ShapeNode]] = field(default_factory=dict)
    """Structure: member name and wire name, as spelled → (wire name, member node)."""
    to_member: dict[str, tuple[str, ShapeNode]] = field(default_factory=dict)
    """Structure: wire name and member name, as spelled → (member name, member node)."""
    child: ShapeNode | None = None
    """List element or map value."""


def lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


@functools.cache
def finding_shape() -> ShapeNode:
    """The ``Finding`` shape of the installed botocore GuardDuty model, compiled once (about a third of a second).
    Used for the spelling of query paths here and for PascalCase ⇄ camelCase in ``sources.botocore_shapes``."""
    from botocore.loaders import Loader

    shapes: dict[str, Any] = Loader().load_service_model("guardduty", "service-2")["shapes"]
    nodes: dict[str, ShapeNode] = {}

    def build(name: str) -> ShapeNode:
        # Shapes are recursive in places (e.g. Kubernetes details); memoise before descending.
        if name in nodes:
            return nodes[name]
        spec = shapes.get(name, {})
        kind = spec.get("type")
        node = ShapeNode(kind if kind in (_STRUCT, _LIST, _MAP) else _SCALAR)
        nodes[name] = node
        if node.kind == _STRUCT:
            for member, mspec in spec.get("members", {}).items():
                wire = mspec.get("locationName") or lower_first(member)
                child = build(mspec["shape"])
                node.members.setdefault(wire.lower(), (wire, child))
                node.members.setdefault(member.lower(), (wire, child))
                node.to_wire[member] = node.to_wire[wire] = (wire, child)
                node.to_member[wire] = node.to_member[member] = (member, child)
        elif node.kind == _LIST:
            node.child = build(spec["member"]["shape"])
        elif node.kind == _MAP:
            node.child = build(spec["value"]["shape"])
        return node

    return build("Finding")


def canonical_path(parts: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Spell each segment of a finding document path as the wire name it means (see the module docstring)."""
    node: ShapeNode | None = finding_shape()
    out: list[str] = []
    for seg in parts:
        while node is not None and node.kind == _LIST:
            node = node.child
        if node is None or node.kind == _SCALAR:
            node = None
            out.append(seg)
        elif node.kind == _MAP:
            out.append(seg)
            node = node.child
        else:
            hit = node.members.get(seg.lower())
            if hit is None:
                node = None
                out.append(seg)
            else:
                out.append(hit[0])
                node = hit[1]
    return tuple(out)
