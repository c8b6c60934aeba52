"""One behaviour suite for every UserRepository: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from app.config import Settings
from app.domains import DOMAINS
from app.lifespan import open_migrated_database
from app.users.repository import SAMPLE_USERS, DuplicateEmailError, UserRepository


@pytest.fixture
async def repository(database_url: str) -> AsyncIterator[UserRepository]:
    db = await open_migrated_database(Settings(database_url=database_url), DOMAINS)
    try:
        yield UserRepository(db)
    finally:
        await db.close()


async def test_seeded_with_the_sample_users(repository: UserRepository) -> None:
    users, total = await repository.list_page(limit=100, offset=0)
    assert total == 10
    assert [(u.id, u.uuid) for u in users] == [(n, SAMPLE_USERS[n - 1][0]) for n in range(1, 11)]
    assert all(u.version == 1 and u.created_at.tzinfo is not None for u in users)


async def test_reopening_does_not_migrate_or_seed_twice(repository: UserRepository, database_url: str) -> None:
    again = await open_migrated_database(Settings(database_url=database_url), DOMAINS)
    try:
        assert (await UserRepository(again).list_page(limit=1, offset=0))[1] == 10
    finally:
        await again.close()


async def test_get_many_by_id_and_uuid(repository: UserRepository) -> None:
    by_id = await repository.get_many_by_id([3, 1, 99, 3])
    assert sorted(by_id) == [1, 3]
    assert by_id[3].first_name == "Grace"
    uuid = SAMPLE_USERS[4][0]
    by_uuid = await repository.get_many_by_uuid([uuid, UUID(int=7)])
    assert list(by_uuid) == [uuid]
    assert by_uuid[uuid].id == 5
    assert isinstance(by_uuid[uuid].uuid, UUID)  # asyncpg's subclass on PostgreSQL (tests/db/test_postgres.py)
    assert await repository.get_by_id(12345) is None


async def test_many_ids_in_one_call(repository: UserRepository) -> None:
    assert len(await repository.get_many_by_id(list(range(-1000, 1500)))) == 10


async def test_pages(repository: UserRepository) -> None:
    users, total = await repository.list_page(limit=3, offset=8)
    assert [u.id for u in users] == [9, 10]
    assert total == 10


async def test_create_assigns_id_uuid_and_version(repository: UserRepository) -> None:
    user = await repository.create(first_name="Linus", last_name="Torvalds", email="linus@example.com")
    assert user.id == 11
    assert user.version == 1
    assert user.created_at == user.updated_at
    assert await repository.get_by_uuid(user.uuid) == user
    other = await repository.create(first_name="Guido", last_name="van Rossum", email="guido@example.com")
    assert other.id == 12
    assert other.uuid != user.uuid


async def test_email_is_unique_case_insensitively(repository: UserRepository) -> None:
    with pytest.raises(DuplicateEmailError):
        await repository.create(first_name="A", last_name="B", email="ADA.lovelace@example.com")
    with pytest.raises(DuplicateEmailError):
        await repository.update(2, {"email": "ada.lovelace@example.com"})
    assert (await repository.list_page(limit=1, offset=0))[1] == 10


async def test_update_changes_fields_and_bumps_the_version(repository: UserRepository) -> None:
    before = await repository.get_by_id(2)
    assert before is not None
    after = await repository.update(2, {"first_name": "Alan M.", "email": "alan@example.com"})
    assert after is not None
    assert (after.first_name, after.last_name, after.email) == ("Alan M.", "Turing", "alan@example.com")
    assert after.version == before.version + 1
    assert after.updated_at >= before.updated_at
    assert after.created_at == before.created_at
    assert await repository.update(999, {"first_name": "X"}) is None


async def test_update_rejects_columns_outside_the_allow_list(repository: UserRepository) -> None:
    with pytest.raises(ValueError, match="not updatable"):
        await repository.update(1, {"id": "2"})


async def test_delete_returns_the_row_and_ids_are_not_reused(repository: UserRepository) -> None:
    deleted = await repository.delete(10)
    assert deleted is not None
    assert deleted.id == 10
    assert await repository.delete(10) is None
    assert await repository.get_by_id(10) is None
    created = await repository.create(first_name="New", last_name="User", email="new@example.com")
    assert created.id == 11


async def test_concurrent_updates_each_get_their_own_version(repository: UserRepository) -> None:
    results = await asyncio.gather(*(repository.update(1, {"last_name": f"L{n}"}) for n in range(20)))
    versions = sorted(user.version for user in results if user is not None)
    assert versions == list(range(2, 22))


async def test_ping(repository: UserRepository) -> None:
    await repository.db.ping()
