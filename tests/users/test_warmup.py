"""The optional cache warm-up at start-up (`CACHE_WARMUP_ENTRIES`): the newest users, versioned, off by default."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.cache import CacheManager, MemoryBackend
from app.cache.testing import FaultyBackend
from app.config import Settings
from app.domains import DOMAINS
from app.lifespan import open_migrated_database
from app.server import create_app
from app.users.caches import UserCaches
from app.users.repository import UserRepository
from app.users.warmup import warm_users
from app.warmup import warm_up

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from app.db import Database

SAMPLE = range(1, 11)
"""The ids of the ten seeded users."""


@pytest.fixture
async def db(sqlite_path: str) -> AsyncIterator[Database]:
    database = await open_migrated_database(Settings(database_url=f"sqlite:///{sqlite_path}"), DOMAINS)
    try:
        yield database
    finally:
        await database.close()


async def _cached_ids(manager: CacheManager) -> set[int]:
    return set(await UserCaches.of(manager).by_id.get_many(SAMPLE))


async def test_the_newest_users_are_cached(db: Database) -> None:
    manager = CacheManager(MemoryBackend())
    assert await warm_users(db, manager, 3) == 3
    assert await _cached_ids(manager) == {8, 9, 10}
    everyone = CacheManager(MemoryBackend())
    assert await warm_users(db, everyone, 1_000) == 10
    assert await _cached_ids(everyone) == set(SAMPLE)


async def test_batches_of_BATCH_users_reach_every_user(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.users.warmup.BATCH", 3)
    backend = FaultyBackend(MemoryBackend())
    manager = CacheManager(backend)
    assert await warm_users(db, manager, 8) == 8
    assert await _cached_ids(manager) == set(range(3, 11))
    assert backend.calls["set_many_if_newer"] == 3  # 3 + 3 + 2 users


async def test_a_newer_cached_version_is_kept(db: Database) -> None:
    manager = CacheManager(MemoryBackend())
    by_id = UserCaches.of(manager).by_id
    stored = await UserRepository(db).get_by_id(10)
    assert stored is not None
    newer = msgspec.structs.replace(stored, version=stored.version + 1, first_name="Newer")
    await by_id.set(10, newer)  # a write the warm-up's read of the table predates
    await warm_users(db, manager, 10)
    assert await by_id.get(10) == newer
    assert by_id.stats.stale_writes == 1


async def test_a_failing_warm_up_is_logged_and_skipped(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    await db.close()  # every query now fails
    manager = CacheManager(MemoryBackend())
    assert await warm_up(DOMAINS, db, manager, 10) == 0
    assert "cache warm-up of users failed" in caplog.text


@pytest.mark.parametrize("entries", [0, 4])
async def test_the_setting_warms_the_cache_at_start_up(sqlite_path: str, entries: int) -> None:
    settings = Settings(database_url=f"sqlite:///{sqlite_path}", cache_warmup_entries=entries)
    app = create_app(settings)
    async with AsyncTestClient(app):
        manager: CacheManager = app.state.cache_manager
        for _ in range(100):
            await asyncio.sleep(0.01)
            if entries and len(await _cached_ids(manager)) == entries:
                break
        assert await _cached_ids(manager) == set(range(11 - entries, 11))
