"""Contract fuzzing: schemathesis drives the app through ASGI from its own OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar import Litestar

from app.config import Settings
from app.server import create_app

ALL_HEALTH_CHECKS: list[HealthCheck] = list(HealthCheck)  # pyright: ignore[reportAssignmentType]

# create_app is pure, so the operations can be listed at collection time without starting anything.
OPERATIONS = [
    (path, method.upper())
    for path, item in create_app(Settings()).openapi_schema.to_schema()["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    database: Path = tmp_path_factory.mktemp("contract") / "users.db"
    return create_app(Settings(database_url=f"sqlite:///{database}", cache_negative_ttl_seconds=1))


@pytest.fixture(scope="module")
def api_schema(contract_app: Litestar) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/schema/openapi.json", contract_app)


def test_every_endpoint_is_fuzzed() -> None:
    assert len(OPERATIONS) >= 10


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_honours_its_contract(api_schema: schemathesis.BaseSchema, path: str, method: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=80, deadline=None, suppress_health_check=ALL_HEALTH_CHECKS, database=None)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()

    check()
