"""YAML files whose errors name file, line and column: the parsed data plus its node tree for line numbers."""

from __future__ import annotations

from typing import Any

import yaml

from minerwatch.errors import ConfigError

# Mapping keys whose construction rewrites the node tree in place (merge ``<<`` and value ``=`` keys).
_REWRITTEN_KEYS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})

# libyaml's parser where PyYAML was built with it: about ten times faster than the pure-Python one, whose parse of
# a rule's fixture tests alone cost 30 ms of each command's start-up. Errors come from the pure-Python parser, so
# their wording is the same on every machine.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose_and_load(text: str) -> tuple[Any, yaml.Node | None]:
    """``yaml.safe_load(text)`` and ``yaml.compose(text)``, with one parse: the data is constructed from the
    node tree. Raises what those raise."""
    try:
        return _compose_and_load(text, _FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
    return _compose_and_load(text, yaml.SafeLoader)


def _compose_and_load(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[Any, yaml.Node | None]:
    root = yaml.compose(text, Loader=loader_class)
    if root is None:
        return None, None
    if _rewritten_by_construction(root):
        return yaml.load(text, Loader=loader_class), root  # noqa: S506 (a safe loader)  # keep the tree as written
    loader = loader_class("")
    try:
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def _rewritten_by_construction(root: yaml.Node) -> bool:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # aliases share nodes, and may make cycles
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.tag in _REWRITTEN_KEYS:
                    return True
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return False


def parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """The data of a YAML document and its composed node tree (for the lines of entries), or ConfigError."""
    try:
        data, root = compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=file,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
        ) from None
    return data, root
