"""Listing users: keyset pages (`?after=`, `next`), the offset pages kept for compatibility, and the query plans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.db import Database
from app.domains import DOMAINS
from app.lifespan import open_migrated_database
from app.server import create_app
from tests.users.test_api import assert_problem

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def pages(database_url: str) -> AsyncIterator[Client]:
    """A client on each database (the memory cache: pages never touch the cache)."""
    async with AsyncTestClient(create_app(Settings(database_url=database_url))) as client:
        yield client


async def _create(client: Client, n: int) -> int:
    body = {"first_name": "Page", "last_name": f"User {n}", "email": f"page.{n}.{uuid4().hex[:8]}@example.com"}
    response = await client.post("/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def _page(client: Client, **params: Any) -> dict[str, Any]:
    response = await client.get("/users", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_cursor_walks_every_user_once_in_order(pages: Client) -> None:
    created = [await _create(pages, n) for n in range(27)]
    seen: list[int] = []
    page = await _page(pages, limit=7)
    assert page["offset"] == 0  # the first page is also offset page 0, as it always was
    while True:
        assert (page["total"], page["limit"]) == (None, 7)
        seen += [user["id"] for user in page["items"]]
        if page["next"] is None:
            break
        assert page["next"] == page["items"][-1]["id"]
        page = await _page(pages, limit=7, after=page["next"])
        assert (page["offset"], page["next_offset"]) == (None, None)
    assert seen == list(range(1, 11)) + created


async def test_a_full_last_page_says_it_is_the_last(pages: Client) -> None:
    first = await _page(pages, limit=5)
    assert (first["next"], first["next_offset"]) == (5, 5)
    last = await _page(pages, limit=5, after=5)
    assert [user["id"] for user in last["items"]] == [6, 7, 8, 9, 10]
    assert last["next"] is None
    assert (await _page(pages, limit=5, offset=5))["next_offset"] is None


async def test_writes_between_pages_leave_no_duplicate_and_no_gap(pages: Client) -> None:
    """Users deleted ahead of the cursor are skipped, users created meanwhile show up, nobody shows up twice."""
    expected = set(range(1, 11))
    seen: list[int] = []
    page = await _page(pages, limit=3)
    n = 0
    while True:
        seen += [user["id"] for user in page["items"]]
        if page["next"] is None:
            break
        cursor = page["next"]
        n += 1
        expected.add(await _create(pages, n))  # ids grow: a new user is always ahead of the cursor
        # One user already shown (no gap may follow) and one not shown yet (it must not be).
        await pages.delete(f"/users/{cursor - 1}")
        await pages.delete(f"/users/{cursor + 1}")
        expected.discard(cursor + 1)
        page = await _page(pages, limit=3, after=cursor)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert set(seen) == expected
    assert set(seen) >= {user_id for user_id in expected if user_id > 10}  # every user created during the walk


async def test_offset_pages_shift_under_deletes_and_the_cursor_does_not(pages: Client) -> None:
    """Why the cursor: deleting a user behind an offset page makes the next offset page skip a user."""
    first = await _page(pages, limit=3)
    assert (await pages.delete("/users/1")).status_code == 204
    by_offset = await _page(pages, limit=3, offset=first["next_offset"])
    by_cursor = await _page(pages, limit=3, after=first["next"])
    assert [user["id"] for user in by_offset["items"]] == [5, 6, 7]  # user 4 is never shown
    assert [user["id"] for user in by_cursor["items"]] == [4, 5, 6]


async def test_any_id_is_a_cursor(pages: Client) -> None:
    assert [user["id"] for user in (await _page(pages, after=-5))["items"]] == list(range(1, 11))
    assert [user["id"] for user in (await _page(pages, after=0))["items"]] == list(range(1, 11))
    assert (await pages.delete("/users/4")).status_code == 204
    assert [user["id"] for user in (await _page(pages, limit=2, after=4))["items"]] == [5, 6]
    past = await _page(pages, after=2**63 - 1)
    assert (past["items"], past["next"]) == ([], None)


async def test_total_only_when_asked_for(pages: Client) -> None:
    assert (await _page(pages))["total"] is None
    assert (await _page(pages, total="true"))["total"] == 10
    assert (await _page(pages, limit=2, after=8, total="true"))["total"] == 10
    assert (await _page(pages, limit=2, offset=8, total="true"))["total"] == 10
    assert (await _page(pages, offset=50, total="true"))["total"] == 10
    assert (await _page(pages, total="false"))["total"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"after": "abc"}, "after"),
        ({"after": "1.5"}, "after"),
        ({"after": " 1"}, "after"),
        ({"after": "+1"}, "after"),
        ({"after": "1_0"}, "after"),
        ({"after": "1e2"}, "after"),  # msgspec's lax mode reads it as 100
        ({"offset": "1e2"}, "offset"),
        ({"after": "\uff19"}, "after"),  # fullwidth 9: int() would read it
        ({"after": ""}, "after"),
        ({"after": "9223372036854775808"}, "after"),
        ({"after": "-9223372036854775809"}, "after"),
        ({"after": "5", "offset": "0"}, "after"),
        ({"after": "5", "offset": "10"}, "after"),
        ({"offset": "\uff11"}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"total": "maybe"}, "total"),
    ],
)
async def test_bad_page_parameters_are_400_naming_the_parameter(
    pages: Client, params: dict[str, str], parameter: str
) -> None:
    body = assert_problem(await pages.get("/users", params=params), 400, parameter)
    assert body["errors"][0]["source"] == "query"


async def test_the_schema_documents_the_cursor(pages: Client) -> None:
    document = (await pages.get("/schema/openapi.json")).json()
    parameters = {p["name"]: p for p in document["paths"]["/users"]["get"]["parameters"]}
    assert parameters["after"]["schema"]["type"] == "integer"
    assert parameters["after"]["schema"]["minimum"] == -(2**63)
    assert "`next`" in parameters["after"]["description"]
    assert parameters["offset"]["schema"] == {**parameters["offset"]["schema"], "type": "integer", "minimum": 0}
    assert "slow" in parameters["offset"]["description"]
    assert parameters["total"]["schema"]["type"] == "boolean"
    page = document["components"]["schemas"]["UserPage"]["properties"]
    assert "`after`" in page["next"]["description"]
    assert "total=true" in page["total"]["description"]


# -- the query plans: a page is a range scan of the primary key, at any depth ------------------------------------

_PAGE = "SELECT id, email FROM users WHERE id > 15000 ORDER BY id LIMIT 51"


@pytest.fixture
async def big_database(database_url: str) -> AsyncIterator[Database]:
    """Each database with 20,000 users more than the sample, and fresh statistics."""
    db = await open_migrated_database(Settings(database_url=database_url), DOMAINS)
    try:
        now = datetime.now(UTC)
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at)"
                " VALUES ($1, 'Plan', 'User', $2, $3, $3)",
                [(uuid4(), f"plan.{n}@example.com", now) for n in range(20_000)],
            )
        await db.fetch("ANALYZE users" if db.dialect.name == "postgresql" else "ANALYZE")
        yield db
    finally:
        await db.close()


async def test_a_page_is_a_range_scan_of_the_primary_key(big_database: Database) -> None:
    if big_database.dialect.name == "postgresql":
        plan = "\n".join(row[0] for row in await big_database.fetch(f"EXPLAIN {_PAGE}"))
        assert "Index Scan using users_pkey on users" in plan, plan
        assert "Index Cond: (id > 15000)" in plan, plan
        assert "Sort" not in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        plan = "\n".join(str(row[3]) for row in await big_database.fetch(f"EXPLAIN QUERY PLAN {_PAGE}"))
        assert "SEARCH users USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
