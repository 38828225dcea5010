"""YAML files whose errors name file, line and column: the parsed data plus its node tree for line numbers."""

from __future__ import annotations

from typing import Any

import yaml

from minerwatch.errors import ConfigError


def parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """The data of a YAML document and its composed node tree (for the lines of entries), or ConfigError."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=file,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
        ) from None
    return data, root
