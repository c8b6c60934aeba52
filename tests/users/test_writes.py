"""Creating, updating and deleting users over HTTP, and what the caches show afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.users.test_api import assert_problem

Client = AsyncTestClient[Litestar]

NEW = {"first_name": "Linus", "last_name": "Torvalds", "email": "linus@example.com"}


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/users", json={**NEW, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_201_with_location(client: Client) -> None:
    response = await client.post("/users", json=NEW)
    assert response.status_code == 201
    user = response.json()
    assert response.headers["location"] == f"/users/{user['id']}"
    assert user["id"] == 11
    assert user["version"] == 1
    assert {k: user[k] for k in NEW} == NEW
    assert (await client.get(response.headers["location"])).json() == user
    assert (await client.get(f"/users/uuid/{user['uuid']}")).json() == user


async def test_create_clears_a_cached_not_found(client: Client) -> None:
    assert (await client.get("/users/11")).status_code == 404  # now cached as absent
    user = await create(client)
    assert user["id"] == 11
    assert (await client.get("/users/11")).json() == user


async def test_duplicate_email_is_409(client: Client) -> None:
    await create(client)
    assert_problem(await client.post("/users", json={**NEW, "email": "LINUS@example.com"}), 409, "email")
    assert_problem(await client.patch("/users/1", json={"email": "linus@example.com"}), 409, "email")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW, "first_name": ""}, "first_name"),
        ({**NEW, "last_name": "x" * 101}, "last_name"),
        ({**NEW, "email": "not-an-email"}, "email"),
        ({**NEW, "email": "a@" + "b" * 250 + ".com"}, "email"),
        ({**NEW, "email": 42}, "email"),
        ({**NEW, "id": 5}, "id"),
        ({"first_name": "A", "last_name": "B"}, "email"),
    ],
)
async def test_invalid_create_body_is_400_naming_the_field(client: Client, body: dict[str, Any], field: str) -> None:
    response = await client.post("/users", json=body)
    problem = assert_problem(response, 400)
    assert field in problem["detail"]
    assert (await client.get("/users", params={"total": "true"})).json()["total"] == 10


async def test_malformed_json_is_400(client: Client) -> None:
    response = await client.post("/users", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 400)


async def test_oversized_body_is_413(client: Client) -> None:
    response = await client.post("/users", json={**NEW, "first_name": "x" * 70_000})
    assert_problem(response, 413)


async def test_patch_updates_some_fields_and_bumps_the_version(client: Client) -> None:
    before = (await client.get("/users/3")).json()
    response = await client.patch("/users/3", json={"last_name": "Murray Hopper"})
    assert response.status_code == 200
    after = response.json()
    assert after["last_name"] == "Murray Hopper"
    assert after["first_name"] == before["first_name"]
    assert after["version"] == before["version"] + 1
    assert (await client.get("/users/3")).json() == after
    assert (await client.get(f"/users/uuid/{after['uuid']}")).json() == after
    assert (await client.post("/users/lookup", json={"ids": [3]})).json()["users"] == [after]


async def test_empty_patch_changes_nothing(client: Client) -> None:
    before = (await client.get("/users/3")).json()
    response = await client.patch("/users/3", json={})
    assert response.status_code == 200
    assert response.json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({"first_name": ""}, "first_name"), ({"email": "nope"}, "email"), ({"uuid": "x"}, "uuid")],
)
async def test_invalid_patch_is_400(client: Client, body: dict[str, Any], field: str) -> None:
    assert field in assert_problem(await client.patch("/users/3", json=body), 400)["detail"]


async def test_patch_and_delete_of_unknown_ids_are_404(client: Client) -> None:
    assert_problem(await client.patch("/users/404", json={"first_name": "X"}), 404, "user_id")
    assert_problem(await client.delete("/users/404"), 404, "user_id")
    assert_problem(await client.patch("/users/abc", json={"first_name": "X"}), 400, "user_id")
    assert_problem(await client.delete("/users/99999999999999999999"), 400, "user_id")


async def test_delete_removes_the_user_everywhere(client: Client) -> None:
    user = (await client.get("/users/5")).json()
    assert (await client.get(f"/users/uuid/{user['uuid']}")).status_code == 200
    response = await client.delete("/users/5")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get("/users/5"), 404, "user_id")
    assert_problem(await client.get(f"/users/uuid/{user['uuid']}"), 404, "user_uuid")
    batch = (await client.get("/users/batch", params={"ids": "4,5,6"})).json()
    assert [u["id"] for u in batch["users"]] == [4, 6]
    assert batch["missing_ids"] == [5]
    assert (await client.get("/users", params={"total": "true"})).json()["total"] == 9


async def test_batch_by_ids(client: Client, app: Litestar) -> None:
    response = await client.get("/users/batch", params={"ids": "3,1,99,3,-7"})
    assert response.status_code == 200
    body = response.json()
    assert [u["id"] for u in body["users"]] == [3, 1]
    assert body["missing_ids"] == [99, -7]
    stats = app.state.cache_manager.stats()["user"]
    loads = stats.loads
    again = (await client.get("/users/batch", params={"ids": "3,1,99,3,-7"})).json()
    assert again == body
    assert app.state.cache_manager.stats()["user"].loads == loads  # hits and cached absences


@pytest.mark.parametrize("ids", ["", "1,,2", "a", "1;2", "1, 2", "9223372036854775808", ",".join(["1"] * 101)])
async def test_bad_batch_ids_are_400(client: Client, ids: str) -> None:
    assert_problem(await client.get("/users/batch", params={"ids": ids}), 400, "ids")


async def test_batch_without_ids_is_400(client: Client) -> None:
    assert_problem(await client.get("/users/batch"), 400, "ids")


async def test_lookup_by_ids_and_uuids(client: Client) -> None:
    body = {
        "ids": [1, 2, 404],
        "uuids": ["550e8400-e29b-41d4-a716-446655440009", "00000000-0000-4000-8000-000000000000"],
    }
    response = await client.post("/users/lookup", json=body)
    assert response.status_code == 200
    result = response.json()
    assert [u["id"] for u in result["users"]] == [1, 2, 9]
    assert result["missing_ids"] == [404]
    assert result["missing_uuids"] == ["00000000-0000-4000-8000-000000000000"]


async def test_lookup_limits(client: Client) -> None:
    assert_problem(await client.post("/users/lookup", json={"ids": list(range(101))}), 400)
    too_many = {"ids": list(range(60)), "uuids": [f"00000000-0000-4000-8000-{n:012d}" for n in range(60)]}
    assert_problem(await client.post("/users/lookup", json=too_many), 400, "ids")
    assert_problem(await client.post("/users/lookup", json={"ids": ["x"]}), 400)
    assert_problem(await client.post("/users/lookup", json={"names": []}), 400)


async def test_flood_of_unknown_ids_reaches_the_database_once(
    client: Client, app: Litestar, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository_class = type(app.state.user_repository)
    calls: list[list[int]] = []
    original = repository_class.get_many_by_id

    async def counting(self: Any, ids: list[int]) -> Any:
        calls.append(list(ids))
        return await original(self, ids)

    monkeypatch.setattr(repository_class, "get_many_by_id", counting)
    for _ in range(50):
        assert (await client.get("/users/777")).status_code == 404
        assert (await client.get("/users/batch", params={"ids": "777,778"})).status_code == 200
    assert calls == [[777], [778]]
