"""Fixtures for the generator tests: a model checker built straight from botocore, independent of the
project's own PascalCase/camelCase converter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest

Checker = Callable[[Any], list[str]]


@pytest.fixture(scope="session")
def finding_shape() -> Any:
    return botocore.session.get_session().get_service_model("guardduty").shape_for("Finding")


def _walk(value: Any, shape: Any, path: str, wire: bool, problems: list[str], free: tuple[str, ...]) -> None:
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        members = {
            (m.serialization.get("name") or name) if wire else name: m for name, m in shape.members.items()
        }
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key not in members:
                if not any(sub.endswith(f) for f in free):
                    problems.append(f"{sub}: not a member of {shape.name}")
                continue
            _walk(item, members[key], sub, wire, problems, free)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{i}]", wire, problems, free)
    elif kind == "map":
        for key, item in value.items():
            _walk(item, shape.value, f"{path}.{key}", wire, problems, free)
    elif kind in ("string",) and not isinstance(value, str):
        problems.append(f"{path}: expected a string, got {value!r}")
    elif kind in ("integer", "long") and (not isinstance(value, int) or isinstance(value, bool)):
        problems.append(f"{path}: expected an integer, got {value!r}")
    elif kind in ("double", "float") and (not isinstance(value, int | float) or isinstance(value, bool)):
        problems.append(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: expected a boolean, got {value!r}")


@pytest.fixture(scope="session")
def check_wire(finding_shape: Any) -> Checker:
    """Problems with a camelCase finding: keys must be the model's wire names (``locationName``).
    EventBridge and the S3 export spell out ``service.additionalInfo``'s JSON beside ``value``/``type``:
    those keys are free."""

    def check(finding: Any) -> list[str]:
        problems: list[str] = []
        free = tuple(
            f".additionalInfo.{k}"
            for k in ("sample", "threatListName", "threatName", "localPort", "outBytes", "inBytes", "unusual")
        )
        _walk(finding, finding_shape, "$", True, problems, free)
        return problems

    return check


@pytest.fixture(scope="session")
def check_pascal(finding_shape: Any) -> Checker:
    """Problems with a boto3 / CLI finding: every key must be the model's member name, nothing else."""

    def check(finding: Any) -> list[str]:
        problems: list[str] = []
        _walk(finding, finding_shape, "$", False, problems, ())
        return problems

    return check
