"""The repair of keys whose write failed: a load begun before the write never fills the cache after the repair,
and the repair reaches every near cache (memory and real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from app.cache import Cache, CacheBackend, CachePolicy, NearCache
from app.cache.testing import FaultyBackend


class Row(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int


def _version(row: Row) -> int:
    return row.version


def row_cache(backend: CacheBackend, **kwargs: object) -> Cache[int, Row]:
    options: dict[str, object] = {
        "policy": CachePolicy(ttl=300.0, negative_ttl=30.0),
        "prefix": "repair",
        "version_of": _version,
    }
    options.update(kwargs)
    return Cache(backend, namespace="row", key_type=int, value_type=Row, **options)  # type: ignore[arg-type]


async def test_a_load_that_read_before_a_failed_write_never_fills_after_the_repair(backend: CacheBackend) -> None:
    """The deterministic race of issue 13: the old row, loaded before the write, filled after the repair."""
    faulty = FaultyBackend(backend)
    cache = row_cache(faulty)
    old, new = Row(name="old", version=99), Row(name="new", version=100)
    database_read = asyncio.Event()
    release = asyncio.Event()

    async def slow_load(_: int) -> Row:
        database_read.set()  # the loader has read the old row from the database...
        await release.wait()  # ...and is slow to put it in the cache
        return old

    reader = asyncio.create_task(cache.get_or_load(7, slow_load))
    await database_read.wait()
    faulty.failing = True  # Redis goes away; the write commits to the database but not to the cache
    await cache.set(7, new)
    faulty.failing = False  # Redis is back
    assert await cache.get(7) is None  # the first read repairs the dirty key
    release.set()
    assert await reader == old  # that reader asked before the write: the old row is a correct answer for it
    for _ in range(3):  # but nobody after it may see the old row again, for the whole TTL
        assert await cache.get(7) != old
    assert await cache.get_or_load(7, _database_has(new)) == new


def _database_has(row: Row):
    async def load(_: int) -> Row:
        return row

    return load


class _Bus:
    """An invalidation bus in memory: every publish reaches every attached near cache at once."""

    def __init__(self) -> None:
        self.near: list[NearCache] = []
        self.published: list[Sequence[str]] = []

    def attach(self, near: NearCache) -> None:
        self.near.append(near)
        near.enabled = True

    async def publish(self, keys: Sequence[str]) -> bool:
        self.published.append(keys)
        for near in self.near:
            near.invalidate(keys)
        return True


async def test_the_repair_of_a_failed_write_reaches_the_other_near_caches(backend: CacheBackend) -> None:
    bus = _Bus()
    faulty = FaultyBackend(backend)
    near_a, near_b = NearCache(ttl=60.0), NearCache(ttl=60.0)
    bus.attach(near_a)
    bus.attach(near_b)
    a = row_cache(faulty, near=near_a, bus=bus)
    b = row_cache(backend, near=near_b, bus=bus)
    old, new = Row(name="old", version=1), Row(name="new", version=2)
    await a.set(7, old)
    assert await b.get(7) == old  # remote hit: now in B's near cache
    assert near_b.get(b.key(7)) is not None
    faulty.failing = True
    await a.set(7, new)  # committed to the database, lost on the way to Redis: nothing published
    faulty.failing = False
    await a.get(7)  # A repairs the key
    assert near_b.get(b.key(7)) is None  # and B's near cache has let go of the old row
    assert await b.get(7) != old
