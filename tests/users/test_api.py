"""HTTP behaviour of every endpoint, on the memory and the Redis backend."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]

ADA_UUID = "550e8400-e29b-41d4-a716-446655440001"


def assert_problem(response: Any, status: int, parameter: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    if parameter is not None:
        assert parameter in body["detail"]
        assert [error["name"] for error in body["errors"]] == [parameter]
    return body


async def test_get_user_by_id(client: Client) -> None:
    response = await client.get("/users/1")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 1
    assert body["uuid"] == ADA_UUID
    assert body["first_name"] == "Ada"
    assert body["email"] == "ada.lovelace@example.com"


async def test_get_user_by_uuid(client: Client) -> None:
    for n in range(1, 11):
        response = await client.get(f"/users/uuid/550e8400-e29b-41d4-a716-4466554400{n:02d}")
        assert response.status_code == 200
        assert response.json()["id"] == n


async def test_repeated_reads_are_served_from_the_cache(client: Client, app: Litestar) -> None:
    first = (await client.get("/users/2")).json()
    second = (await client.get("/users/2")).json()
    assert first == second
    by_uuid = (await client.get(f"/users/uuid/{first['uuid']}")).json()
    assert by_uuid == first
    stats = app.state.cache_manager.stats()
    assert stats["user"].hits >= 2
    assert stats["user"].loads == 1


@pytest.mark.parametrize("path", ["/users/11", "/users/0", "/users/-5", "/users/9223372036854775807"])
async def test_unknown_id_is_404(client: Client, path: str) -> None:
    assert_problem(await client.get(path), 404, "user_id")


async def test_unknown_uuid_is_404(client: Client) -> None:
    assert_problem(await client.get("/users/uuid/00000000-0000-4000-8000-000000000000"), 404, "user_uuid")


@pytest.mark.parametrize("segment", ["abc", "1.5", "1e3", "%20", "0x10", "--1"])
async def test_malformed_id_is_400_naming_the_parameter(client: Client, segment: str) -> None:
    body = assert_problem(await client.get(f"/users/{segment}"), 400, "user_id")
    assert body["errors"][0]["source"] == "path"


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1" * 40])
async def test_id_outside_int64_is_400(client: Client, value: str) -> None:
    assert_problem(await client.get(f"/users/{value}"), 400, "user_id")


@pytest.mark.parametrize("segment", ["not-a-uuid", "550e8400-e29b-41d4-a716-44665544000", "1"])
async def test_malformed_uuid_is_400_naming_the_parameter(client: Client, segment: str) -> None:
    assert_problem(await client.get(f"/users/uuid/{segment}"), 400, "user_uuid")


async def test_list_users_pages_through_everyone(client: Client) -> None:
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get("/users", params={"limit": 3, "offset": offset, "total": "true"})
        assert response.status_code == 200
        page = response.json()
        assert page["total"] == 10
        assert page["limit"] == 3
        seen += [user["id"] for user in page["items"]]
        offset = page["next_offset"]
    assert seen == list(range(1, 11))


async def test_list_users_defaults(client: Client) -> None:
    page = (await client.get("/users")).json()
    assert len(page["items"]) == 10
    assert page["offset"] == 0
    assert page["next_offset"] is None


async def test_offset_past_the_end_is_an_empty_page(client: Client) -> None:
    page = (await client.get("/users", params={"offset": 50})).json()
    assert page["items"] == []
    assert page["next_offset"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "99999999999999999999"}, "offset"),
    ],
)
async def test_bad_page_parameters_are_400(client: Client, params: dict[str, Any], parameter: str) -> None:
    body = assert_problem(await client.get("/users", params=params), 400, parameter)
    assert body["errors"][0]["source"] == "query"


async def test_unknown_route_is_a_404_problem(client: Client) -> None:
    response = await client.get("/nope")
    assert_problem(response, 404)
    assert len(response.headers["x-request-id"]) == 32  # even responses the router gives carry a request id


async def test_wrong_method_is_405(client: Client) -> None:
    response = await client.put("/users/1")
    assert_problem(response, 405)


async def test_liveness(client: Client) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_reports_database_and_cache(client: Client, app: Litestar) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"]["status"] == "ok"
    assert body["cache"]["status"] == "ok"
    assert body["cache"]["backend"] == ("redis" if app.state.settings.redis_url else "memory")


async def test_openapi_document_lists_every_endpoint(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    operations = {
        (path, method): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    }
    assert set(operations) >= {
        ("/users", "get"),
        ("/users/{user_id}", "get"),
        ("/users/uuid/{user_uuid}", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
    }
    for (path, _), op in operations.items():
        assert op.get("operationId"), path
        assert op.get("summary"), path
    assert "404" in operations[("/users/{user_id}", "get")]["responses"]
    assert "400" in operations[("/users/{user_id}", "get")]["responses"]


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger", "/schema/redoc"])
async def test_schema_ui_pages(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
