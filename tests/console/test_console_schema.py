"""Schemathesis against the console's OpenAPI schema (bounded examples, as an admin): no request gives a 5xx.

Runs after the browser tests (file order): the fuzzer's writes land on made-up alert ids, which the API answers
with 404 / 400 / 422."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import Console


def test_api_never_answers_5xx(console: Console) -> None:
    token = console.token("ada")
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(console.url + "/api/openapi.json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[tuple[str, str, int, str]] = []
    calls = [0]
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def check(case: Any) -> None:
            response = case.call(base_url=console.url, headers=headers, timeout=120)
            calls[0] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.status_code, response.text[:200]))

        check()
    assert calls[0] >= len(operations)
    assert failures == []
