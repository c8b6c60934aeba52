"""The cache outbox is written in the write's own transaction: an acknowledged write always has its rows,
a write that fails or rolls back has none (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.cache import CacheManager, MemoryBackend
from app.config import Settings
from app.db import Database
from app.db.outbox import DatabaseOutbox, OutboxRow
from app.domains import DOMAINS
from app.errors import ConflictError
from app.lifespan import open_migrated_database
from app.users.caches import MAPPING_VERSION, TOMBSTONE_VERSION, UserCaches
from app.users.models import UserCreate, UserUpdate
from app.users.repository import UserRepository
from app.users.service import UserService


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_migrated_database(Settings(database_url=database_url), DOMAINS)
    try:
        yield database
    finally:
        await database.close()


def _service(db: Database) -> UserService:
    caches = UserCaches.of(CacheManager(MemoryBackend()))
    return UserService(repository=UserRepository(db), user_by_id=caches.by_id, id_by_uuid=caches.id_by_uuid)


async def _rows(db: Database) -> list[tuple[str, str, int, str]]:
    return [(r.namespace, r.key, r.version, r.kind) for r in await DatabaseOutbox(db).read_after(0, 1000)]


async def test_every_acknowledged_write_has_its_invalidations(db: Database) -> None:
    service = _service(db)
    assert await _rows(db) == []
    user = await service.create(UserCreate(first_name="Ada", last_name="L", email="ada.outbox@example.com"))
    created = [
        ("user", str(user.id), 1, "create"),
        ("user-id-by-uuid", service.id_by_uuid.key_text(user.uuid), MAPPING_VERSION, "create"),
    ]
    assert await _rows(db) == created
    updated = await service.update(user.id, UserUpdate(first_name="Ada2"))
    assert await _rows(db) == [*created, ("user", str(user.id), updated.version, "update")]
    await service.delete(user.id)
    assert (await _rows(db))[3:] == [
        ("user", str(user.id), updated.version + 1, "delete"),
        ("user-id-by-uuid", service.id_by_uuid.key_text(user.uuid), TOMBSTONE_VERSION, "delete"),
    ]
    records = await DatabaseOutbox(db).read_after(0, 1000)
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert await DatabaseOutbox(db).read_after(records[2].id, 2) == records[3:5]


async def test_a_write_that_fails_records_nothing(db: Database) -> None:
    service = _service(db)
    with pytest.raises(ConflictError):
        await service.update(1, UserUpdate(email="alan.turing@example.com"))  # user 2's email
    with pytest.raises(ConflictError):
        await service.create(UserCreate(first_name="A", last_name="B", email="ada.lovelace@example.com"))
    assert await _rows(db) == []


async def test_an_outbox_insert_that_fails_rolls_the_write_back(db: Database) -> None:
    repository = UserRepository(db)
    before = await repository.get_by_id(1)
    assert before is not None

    def broken(_: object) -> list[OutboxRow]:
        return [OutboxRow("user", "1", 2, "update"), OutboxRow(None, "1", 2, "update")]  # type: ignore[arg-type]

    with pytest.raises(Exception, match=r"(?i)null"):
        await repository.update(1, {"first_name": "Changed"}, invalidations=broken)
    assert await repository.get_by_id(1) == before  # the update rolled back with its outbox rows
    assert await _rows(db) == []
    with pytest.raises(Exception, match=r"(?i)null"):
        await repository.delete(1, invalidations=broken)
    assert await repository.get_by_id(1) == before
    assert await _rows(db) == []


async def test_old_rows_are_pruned(db: Database) -> None:
    service = _service(db)
    await service.update(1, UserUpdate(first_name="Pruned"))
    outbox = DatabaseOutbox(db)
    await outbox.prune(60.0)
    assert len(await _rows(db)) == 1  # younger than a minute: kept
    await outbox.prune(0.0)
    assert await _rows(db) == []
