"""Contract fuzzing: schemathesis drives the app through ASGI from its own OpenAPI document.

Three phases: schema-valid data (every operation must accept it: no 4xx other than 404/409, no 5xx, responses
as documented), schema-invalid data (every operation must reject it with a 4xx, never a 5xx) and stateful
workflows along the links schemathesis infers (create, then read, update and delete what was created).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ensure_resource_availability

from app.config import Settings
from app.server import create_app

ALL_HEALTH_CHECKS: list[HealthCheck] = list(HealthCheck)  # pyright: ignore[reportAssignmentType]

# create_app is pure, so the operations can be listed at collection time without starting anything.
_PATHS: dict[str, dict[str, Any]] = create_app(Settings()).openapi_schema.to_schema()["paths"]
OPERATIONS = [
    (path, method.upper())
    for path, item in _PATHS.items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]
# Negative data needs something to make invalid: a parameter or a body.
INPUT_OPERATIONS = [
    (path, method)
    for path, method in OPERATIONS
    if _PATHS[path][method.lower()].get("parameters") or _PATHS[path][method.lower()].get("requestBody")
]


# Query parameters that exclude each other, which OpenAPI cannot state: a schema-valid request naming more than one
# of them must be a 400 naming one of them, never a 2xx or a 5xx.
EXCLUSIVE_QUERY: dict[tuple[str, str], frozenset[str]] = {("/users", "GET"): frozenset({"after", "offset"})}


def _names_exclusive_parameters(case: schemathesis.Case) -> bool:
    exclusive = EXCLUSIVE_QUERY.get((case.path, case.method.upper()), frozenset[str]())
    return len(exclusive & (case.query or {}).keys()) > 1


def _assert_exclusion_refused(response: Any, case: schemathesis.Case) -> None:
    assert response.status_code == 400, response.text
    names = {error["name"] for error in response.json()["errors"]}
    # Stateful phases may also send values the schema refuses: then the 400 may name those parameters too.
    assert names, response.text
    assert names <= (case.query or {}).keys(), names


def _settings(database: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{database}", cache_negative_ttl_seconds=1)


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    return create_app(_settings(tmp_path_factory.mktemp("contract") / "users.db"))


@pytest.fixture(scope="module")
def api_schema(contract_app: Litestar) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/schema/openapi.json", contract_app)


def test_every_endpoint_is_fuzzed() -> None:
    assert len(OPERATIONS) >= 10
    assert len(INPUT_OPERATIONS) >= 8


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=80, deadline=None, suppress_health_check=ALL_HEALTH_CHECKS, database=None)
    def check(case: schemathesis.Case) -> None:
        if mode is GenerationMode.POSITIVE and _names_exclusive_parameters(case):
            _assert_exclusion_refused(case.call(), case)
            return
        case.call_and_validate()

    check()


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_accepts_valid_data(api_schema: schemathesis.BaseSchema, path: str, method: str) -> None:
    _fuzz(api_schema[path][method], GenerationMode.POSITIVE)


@pytest.mark.parametrize(("path", "method"), INPUT_OPERATIONS)
def test_operation_rejects_invalid_data(api_schema: schemathesis.BaseSchema, path: str, method: str) -> None:
    _fuzz(api_schema[path][method], GenerationMode.NEGATIVE)


def test_stateful_workflows(api_schema: schemathesis.BaseSchema, tmp_path: Path) -> None:
    databases = itertools.count()

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        """Each scenario on an app with a database of its own: hypothesis replays a failing scenario to shrink it,
        and the replay must see the state the first run saw."""

        def setup(self) -> None:
            self.app = create_app(_settings(tmp_path / f"scenario-{next(databases)}.db"))
            self.uuids: dict[str, str] = {}
            self.deleted: set[str] = set()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": self.app}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            if case.method == "POST" and case.path == "/users" and response.status_code == 201:
                user = response.json()
                self.uuids[str(user["id"])] = user["uuid"]
            elif case.method == "DELETE" and response.status_code == 204:
                self.deleted.add(self.uuids.get(str((case.path_parameters or {}).get("user_id")), ""))

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            # Schemathesis relates a created user to a later DELETE only by the same path parameter, so a user
            # deleted by id and then read by UUID would look like a created resource gone missing.
            if _names_exclusive_parameters(case):
                _assert_exclusion_refused(response, case)
                return
            uuid = (case.path_parameters or {}).get("user_uuid")
            excluded = [ensure_resource_availability] if uuid is not None and str(uuid) in self.deleted else None
            case.validate_response(
                response,
                excluded_checks=excluded,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,  # pyright: ignore[reportAttributeAccessIssue]
            )

    Workflow.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=ALL_HEALTH_CHECKS,
            database=None,
        )
    )
