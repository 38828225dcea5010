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
import gzip
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

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
    return _build("Finding", _service_model()["shapes"], {})


def _build(name: str, shapes: dict[str, Any], nodes: dict[str, ShapeNode]) -> ShapeNode:
    """The node of shape ``name`` and those below it, each built once into ``nodes``. A plain function, not a
    closure over the model: a closure that calls itself is a reference cycle, which would keep the whole parsed
    model (about 1,400 dicts) until the cyclic collector runs, and a batch run pauses it (``alerting.detect``)."""
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
            child = _build(mspec["shape"], shapes, nodes)
            node.members.setdefault(wire.lower(), (wire, child))
            node.members.setdefault(member.lower(), (wire, child))
            node.to_wire[member] = node.to_wire[wire] = (wire, child)
            node.to_member[wire] = node.to_member[member] = (member, child)
    elif node.kind == _LIST:
        node.child = _build(spec["member"]["shape"], shapes, nodes)
    elif node.kind == _MAP:
        node.child = _build(spec["value"]["shape"], shapes, nodes)
    return node


def _service_model() -> dict[str, Any]:
    """GuardDuty's ``service-2`` model, as botocore's ``Loader`` finds it: its latest API version. Read straight
    from botocore's data folder when nothing could change the Loader's answer (no model under ``~/.aws/models``,
    no ``sdk-extras`` file to merge), since importing ``botocore.loaders`` pulls in urllib3 and the TLS stack and
    takes longer than the rest of a detection's start; otherwise the Loader reads it."""
    spec = importlib.util.find_spec("botocore")
    roots = list(spec.submodule_search_locations or ()) if spec is not None else []
    customer = os.path.join(os.path.expanduser("~"), ".aws", "models", "guardduty")
    if len(roots) == 1 and not os.path.exists(customer):
        folder = os.path.join(roots[0], "data", "guardduty")
        try:
            versions = sorted(v for v in os.listdir(folder) if not v.startswith("."))
        except OSError:
            versions = []
        for version in reversed(versions):  # the Loader's choice: the latest version that has the model
            base = os.path.join(folder, version)
            names = set(os.listdir(base)) if os.path.isdir(base) else set()
            if not names & {"service-2.json", "service-2.json.gz"}:
                continue
            if any(name.startswith("service-2.sdk-extras") for name in names):
                break
            if "service-2.json" in names:  # the Loader prefers the plain file to the compressed one
                with open(os.path.join(base, "service-2.json"), "rb") as f:
                    return orjson.loads(f.read())  # 800 kB of JSON: orjson reads it in a third of json's time
            with gzip.open(os.path.join(base, "service-2.json.gz"), "rb") as f:
                return orjson.loads(f.read())
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model("guardduty", "service-2")
    return model


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
