"""Bad input is a clean 4xx with problem details (issue 11, items 1-8; issue 10, item 5)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.config import ConfigError, Settings
from app.server import create_app
from tests.users.test_api import assert_problem

JSON = {"content-type": "application/json"}
NEW = {"first_name": "Linus", "last_name": "Torvalds", "email": "linus@example.com"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    database: Path = tmp_path_factory.mktemp("inputs") / "users.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{database}"))) as client:
        yield client


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", b'{"first_name":' + deep(5000) + b"}"),
        ("PATCH", "/users/1", b'{"last_name":' + deep(5000) + b"}"),
        ("POST", "/users/lookup", b'{"ids":' + deep(5000) + b"}"),
        ("POST", "/users/lookup", deep(20000)),
        ("POST", "/users/lookup", b'{"ids":[1.0],"uuids":' + deep(20000) + b"}"),
    ],
)
def test_deep_nesting_is_400_without_an_error_log(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture, method: str, path: str, body: bytes
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client.request(method, path, content=body, headers=JSON)
    assert_problem(response, 400)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/users/lookup", b'{"ids":[1],"uuids":["\xff\xfe"]}', "uuids"),
        ("POST", "/users", b'{"first_name":"\xc3\x28","last_name":"x","email":"a@b.co"}', "body"),
        ("PATCH", "/users/1", b'{"first_name":"\xc3\x28"}', "body"),
        ("POST", "/users", b'{"first_name":', "body"),
    ],
)
def test_invalid_utf8_or_json_is_400(
    client: TestClient[Litestar], method: str, path: str, body: bytes, field: str
) -> None:
    assert_problem(client.request(method, path, content=body, headers=JSON), 400, field)


@pytest.mark.parametrize(
    "segment", ["%EF%BC%91", "%D9%A1", "%201", "1%0A", "1_0", "+1", "1%20", "%E2%80%8B1", "0x1", "1.0"]
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_non_canonical_path_id_is_400(client: TestClient[Litestar], method: str, segment: str) -> None:
    response = client.request(method, f"/users/{segment}", json={"last_name": "Changed"})
    body = assert_problem(response, 400, "user_id")
    assert body["errors"][0]["source"] == "path"
    assert client.get("/users/1").json()["last_name"] == "Lovelace"


@pytest.mark.parametrize(
    "segment",
    [
        "550e8400-e29b-41d4-a716-44665544000%EF%BC%91",  # a fullwidth 1
        "{550e8400-e29b-41d4-a716-446655440001}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440001",
        "550e8400-e29b41d4-a716-446655440001",  # hyphens neither all there nor all absent
        "550e8400e29b-41d4-a716-446655440001",
    ],
)
def test_non_canonical_uuid_is_400(client: TestClient[Litestar], segment: str) -> None:
    assert_problem(client.get(f"/users/uuid/{segment}"), 400, "user_uuid")


@pytest.mark.parametrize(
    "segment",
    [
        "550e8400-e29b-41d4-a716-446655440001",
        "550E8400-E29B-41D4-A716-446655440001",
        "550e8400e29b41d4a716446655440001",
    ],
)
def test_uuid_forms_the_readme_lists_are_accepted(client: TestClient[Litestar], segment: str) -> None:
    response = client.get(f"/users/uuid/{segment}")
    assert response.status_code == 200
    assert response.json()["id"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "a\u0085b"),  # NEL, a C1 control
        ("first_name", "a\u009b31mb"),  # CSI, a C1 control
        ("last_name", "a\u202eb"),  # right-to-left override
        ("last_name", "a\u2066b"),  # left-to-right isolate
        ("first_name", "a\u2028b"),  # line separator
        ("first_name", "a\u2029b"),  # paragraph separator
        ("first_name", "a\u200bb"),  # zero-width space
        ("first_name", "\ufeffa"),  # byte order mark
        ("email", "x\u0085@example.com"),
        ("email", "x@exa\u202emple.com"),
        ("email", "x@example.com\u2028"),
    ],
)
def test_control_and_format_characters_are_rejected(client: TestClient[Litestar], field: str, value: str) -> None:
    body = assert_problem(client.post("/users", json={**NEW, field: value}), 400, field)
    assert "regex" not in body["detail"]  # says what is wrong, not the pattern
    assert_problem(client.patch("/users/1", json={field: value}), 400, field)


@pytest.mark.parametrize(
    "name", ["Zoë", "\u0645\u0631\u06cc\u0645\u200c\u0633\u0627\u062f\u0627\u062a", "Ævar Arnfjörð", "李"]
)  # ZWNJ stays allowed
def test_names_in_any_script_are_accepted(client: TestClient[Litestar], name: str) -> None:
    response = client.patch("/users/2", json={"first_name": name})
    assert response.status_code == 200, response.text
    assert response.json()["first_name"] == name


@pytest.mark.parametrize(
    ("body", "field"),
    [({"ids": ["1"]}, "ids"), ({"ids": [True]}, "ids"), ({"uuids": [1]}, "uuids"), ({"ids": [1.5]}, "ids")],
)
def test_lookup_types_are_strict(client: TestClient[Litestar], body: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/users/lookup", json=body), 400, field)


def test_an_integral_json_number_is_an_integer(client: TestClient[Litestar]) -> None:
    # JSON Schema (and so the published contract) counts 1.0 as an integer.
    response = client.post("/users/lookup", content=b'{"ids":[1.0]}', headers=JSON)
    assert response.status_code == 200
    assert [user["id"] for user in response.json()["users"]] == [1]


@pytest.mark.parametrize("value", ["1e2", "\uff11", "10.0", " 5", "5_0", "+5"])
@pytest.mark.parametrize("parameter", ["limit", "offset"])
def test_query_integers_are_strict(client: TestClient[Litestar], parameter: str, value: str) -> None:
    body = assert_problem(client.get("/users", params={parameter: value}), 400, parameter)
    assert body["errors"][0]["source"] == "query"


@pytest.mark.parametrize("user_id", ["1234567890123456789", "9223372036854775807", "-9223372036854775808", "007"])
def test_batch_accepts_every_id_the_path_accepts(client: TestClient[Litestar], user_id: str) -> None:
    assert client.get(f"/users/{user_id}").status_code in {200, 404}
    response = client.get("/users/batch", params={"ids": f"1,{user_id}"})
    assert response.status_code == 200, response.text
    assert response.json()["users"][0]["id"] == 1


@pytest.mark.parametrize("user_id", ["9223372036854775808", "-9223372036854775809", "\uff11", "1_0"])
def test_batch_and_path_reject_the_same_ids(client: TestClient[Litestar], user_id: str) -> None:
    assert_problem(client.get(f"/users/{user_id}"), 400, "user_id")
    assert_problem(client.get("/users/batch", params={"ids": user_id}), 400, "ids")


def test_openapi_states_the_limits(client: TestClient[Litestar]) -> None:
    doc = client.get("/schema/openapi.json").json()
    lookup = doc["components"]["schemas"]["UserLookup"]
    assert "100 in all" in lookup["description"]
    assert lookup["properties"]["ids"]["maxItems"] == 100
    operation = doc["paths"]["/users/lookup"]["post"]
    assert "100 in all" in operation["description"]
    validator = jsonschema.Draft202012Validator(lookup)
    uuid = "550e8400-e29b-41d4-a716-446655440001"
    assert validator.is_valid({"ids": [1] * 40, "uuids": [uuid] * 60})
    assert not validator.is_valid({"ids": [1] * 40, "uuids": [uuid] * 61})
    assert_problem(client.post("/users/lookup", json={"ids": [1] * 40, "uuids": [uuid] * 61}), 400, "ids")
    assert client.post("/users/lookup", json={"ids": [1] * 40, "uuids": [uuid] * 60}).status_code == 200


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/users", "GET, OPTIONS, POST"),
        ("/users/1", "DELETE, GET, OPTIONS, PATCH"),
        ("/users/lookup", "OPTIONS, POST"),
        ("/users/uuid/550e8400-e29b-41d4-a716-446655440001", "GET, OPTIONS"),
    ],
)
def test_options_lists_every_method(client: TestClient[Litestar], path: str, allow: str) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("path", ["/schema/foo", "/schema/elements", "/nope", "/users/1/x"])
def test_every_404_is_problem_details(client: TestClient[Litestar], path: str) -> None:
    assert_problem(client.get(path), 404)


def test_405_is_problem_details_with_allow(client: TestClient[Litestar]) -> None:
    response = client.put("/users")
    assert_problem(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("REDIS_URL", "redis://:pw@host:notaport/0"),
        ("REDIS_URL", "redis://host:70000/0"),
        ("DATABASE_URL", "postgresql://u:pw@host:notaport/db"),
        ("DATABASE_URL", "postgresql://u:pw@h1:5432,h2:x/db"),
    ],
)
def test_malformed_url_port_is_a_configuration_error(variable: str, url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: url}, env_file=None)
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert "port" in message
    assert "pw" not in message


def test_several_postgres_hosts_are_accepted() -> None:
    url = "postgresql://u:pw@h1:5432,h2:5433/db"
    assert Settings.from_env({"DATABASE_URL": url}, env_file=None).database_url == url


@pytest.mark.parametrize(
    ("variable", "url"), [("REDIS_URL", "redis://:pw@host:notaport/0"), ("DATABASE_URL", "postgresql://u:pw@h:x/db")]
)
def test_malformed_url_port_stops_start_up_with_one_line(tmp_path: Path, variable: str, url: str) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parent.parent), variable: url}
    result = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"configuration error: {variable}: the port must be")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "pw" not in result.stderr
