"""YAML files whose errors name file, line and column: the parsed data plus its node tree for line numbers."""

from __future__ import annotations

from typing import Any

import yaml

from minerwatch.errors import ConfigError


def compose_and_load(text: str) -> tuple[Any, yaml.Node | None]:
    """``yaml.safe_load``'s data and the node tree it is built from (for lines), from one parse of ``text``;
    raises yaml.YAMLError as those do."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None, None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root), root
    finally:
        loader.dispose()


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
