"""Schemathesis against the console's OpenAPI schema (bounded examples, as an admin): no request gives a 5xx.

Runs after the browser tests (file order): the fuzzer's writes land on made-up alert ids, which the API answers
with 404 / 400 / 422."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import Console


@pytest.fixture(scope="session")
def admin_token(console: Console) -> str:
    return console.token("ada")


@pytest.fixture(scope="session")
def api_schema(console: Console, admin_token: str) -> Any:
    return schemathesis.openapi.from_url(
        console.url + "/api/openapi.json", headers={"Authorization": f"Bearer {admin_token}"}
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_never_answers_5xx(case: Any, console: Console, admin_token: str) -> None:
    response = case.call(base_url=console.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=120)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
