"""Cache[K, V] behaviour, on every backend."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import msgspec
import pytest

from app.cache import Cache, CacheBackend, CacheManager, CachePolicy, CacheSpec, MemoryBackend
from app.cache.codec import schema_fingerprint
from app.cache.testing import FaultyBackend


class Point(msgspec.Struct, frozen=True, kw_only=True):
    x: int
    y: int
    version: int = 1


def point_cache(backend: CacheBackend, **kwargs: object) -> Cache[int, Point]:
    options: dict[str, object] = {"ttl": 60.0, "negative_ttl": 60.0, "prefix": "t"}
    options.update(kwargs)
    policy = CachePolicy(**{name: options.pop(name) for name in CachePolicy.__struct_fields__ if name in options})  # type: ignore[arg-type]
    return Cache(backend, namespace="point", key_type=int, value_type=Point, policy=policy, **options)  # type: ignore[arg-type]


async def test_set_get_delete_round_trip(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    assert await cache.get(1) is None
    await cache.set(1, Point(x=1, y=2))
    assert await cache.get(1) == Point(x=1, y=2)
    await cache.delete(1)
    assert await cache.get(1) is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


async def test_batch_operations(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    await cache.set_many({i: Point(x=i, y=-i) for i in range(5)})
    assert await cache.get_many([0, 2, 4, 9, 2]) == {0: Point(x=0, y=0), 2: Point(x=2, y=-2), 4: Point(x=4, y=-4)}
    await cache.delete_many([0, 2])
    assert set(await cache.get_many(range(5))) == {1, 3, 4}


async def test_keys_are_namespaced_and_carry_the_schema_fingerprint(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    assert cache.key(42) == f"t:point:{schema_fingerprint(Point)}:42"
    uuid_cache: Cache[UUID, int] = Cache(
        backend, namespace="ids", key_type=UUID, value_type=int, policy=CachePolicy(ttl=1)
    )
    key = uuid4()
    assert uuid_cache.key(key).endswith(f":{uuid_cache.key_text(key)}")


def test_the_fingerprint_follows_the_schema() -> None:
    class PointV2(msgspec.Struct, frozen=True, kw_only=True):
        x: int
        y: int
        z: int = 0

    assert schema_fingerprint(Point) == schema_fingerprint(Point)
    assert schema_fingerprint(Point) != schema_fingerprint(PointV2)
    assert schema_fingerprint(int) != schema_fingerprint(str)


async def test_undecodable_entry_is_deleted_counted_and_a_miss(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    from app.cache import Entry

    await backend.set_many([Entry(cache.key(7), b"\xc1garbage", 60_000)])
    assert await cache.get(7) is None
    assert cache.stats.decode_errors == 1
    assert await backend.get_many([cache.key(7)]) == [None]

    async def load(key: int) -> Point:
        return Point(x=key, y=key)

    await backend.set_many([Entry(cache.key(7), b"\x93\x01", 60_000)])  # valid msgpack, wrong shape
    assert await cache.get_or_load(7, load) == Point(x=7, y=7)
    assert await cache.get(7) == Point(x=7, y=7)
    assert cache.stats.decode_errors == 2


async def test_negative_entries(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    calls: list[int] = []

    async def load(key: int) -> Point | None:
        calls.append(key)
        return None

    assert await cache.get_or_load(5, load) is None
    assert await cache.get_or_load(5, load) is None
    assert calls == [5]
    assert cache.stats.negative_hits == 1
    await cache.set(5, Point(x=5, y=5))
    assert await cache.get_or_load(5, load) == Point(x=5, y=5)


async def test_negative_caching_can_be_off(backend: CacheBackend) -> None:
    cache = point_cache(backend, negative_ttl=0.0)
    calls: list[int] = []

    async def load(key: int) -> Point | None:
        calls.append(key)
        return None

    await cache.get_or_load(5, load)
    await cache.get_or_load(5, load)
    assert calls == [5, 5]


async def test_concurrent_misses_on_one_key_share_one_load(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    calls: list[int] = []

    async def load(key: int) -> Point:
        calls.append(key)
        # Until every other caller has joined: on a slow backend (a cluster) late callers would hit the new entry.
        async with asyncio.timeout(10):
            while cache.stats.coalesced < 999:
                await asyncio.sleep(0.01)
        return Point(x=key, y=0)

    results = await asyncio.gather(*(cache.get_or_load(1, load) for _ in range(1000)))
    assert calls == [1]
    assert set(results) == {Point(x=1, y=0)}
    assert cache.stats.coalesced == 999


async def test_a_batch_of_misses_is_one_loader_call(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    await cache.set_many({i: Point(x=i, y=i) for i in range(0, 500, 10)})
    batches: list[list[int]] = []

    async def load(keys: list[int]) -> dict[int, Point]:
        batches.append(keys)
        return {key: Point(x=key, y=key) for key in keys if key < 400}

    found = await cache.get_many_or_load(range(500), load)
    assert len(batches) == 1
    assert len(batches[0]) == 450
    assert set(found) == set(range(400)) | set(range(400, 500, 10))
    again = await cache.get_many_or_load(range(500), load)
    assert again == found
    assert len(batches) == 1  # absent keys were cached as absent


async def test_a_loader_error_reaches_every_waiter_and_is_not_cached(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    attempts: list[int] = []

    async def failing(key: int) -> Point:
        attempts.append(key)
        await asyncio.sleep(0.05)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(cache.get_or_load(3, failing) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert attempts == [3]

    async def working(key: int) -> Point:
        return Point(x=key, y=1)

    assert await cache.get_or_load(3, working) == Point(x=3, y=1)


async def test_a_cancelled_caller_does_not_cancel_the_shared_load(backend: CacheBackend) -> None:
    cache = point_cache(backend)
    started = asyncio.Event()

    async def load(key: int) -> Point:
        started.set()
        await asyncio.sleep(0.1)
        return Point(x=key, y=2)

    first = asyncio.create_task(cache.get_or_load(8, load))
    await started.wait()
    second = asyncio.create_task(cache.get_or_load(8, load))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == Point(x=8, y=2)
    assert await cache.get(8) == Point(x=8, y=2)


async def test_versioned_cache_never_replaces_a_newer_value(backend: CacheBackend) -> None:
    cache = point_cache(backend, version_of=lambda p: p.version)
    await cache.set(1, Point(x=1, y=1, version=2))
    await cache.set(1, Point(x=0, y=0, version=1))
    assert await cache.get(1) == Point(x=1, y=1, version=2)
    assert cache.stats.stale_writes == 1
    await cache.set_absent(1, version=3)
    await cache.set(1, Point(x=1, y=1, version=2))
    assert await cache.get(1) is None
    await cache.set(1, Point(x=4, y=4, version=4))
    assert await cache.get(1) == Point(x=4, y=4, version=4)


async def test_backend_errors_degrade_to_misses_and_no_ops() -> None:
    faulty = FaultyBackend(MemoryBackend(), failing=True)
    cache = point_cache(faulty)
    await cache.set(1, Point(x=1, y=1))
    assert await cache.get(1) is None
    assert await cache.get_many([1, 2]) == {}
    await cache.delete(1)

    async def load(key: int) -> Point:
        return Point(x=key, y=9)

    assert await cache.get_or_load(1, load) == Point(x=1, y=9)
    assert cache.stats.errors >= 4
    faulty.failing = False
    await cache.set(1, Point(x=1, y=1))
    assert await cache.get(1) == Point(x=1, y=1)


async def test_a_write_that_failed_is_repaired_before_the_cache_is_read_again() -> None:
    faulty = FaultyBackend(MemoryBackend())
    cache = point_cache(faulty)
    await cache.set(1, Point(x=1, y=1))
    await cache.set(2, Point(x=2, y=2))
    faulty.failing = True
    await cache.delete(1)  # fails: the old value is still in the backend
    await cache.set(2, Point(x=2, y=3))  # fails too
    assert await cache.get(2) is None  # reads are misses while the repair cannot run
    faulty.failing = False
    assert await cache.get(1) is None
    assert await cache.get(2) is None
    assert await faulty.inner.get_many([cache.key(1), cache.key(2)]) == [None, None]
    await cache.set(2, Point(x=2, y=3))
    assert await cache.get(2) == Point(x=2, y=3)


def test_ttl_and_jitter_are_validated() -> None:
    with pytest.raises(ValueError, match="ttl"):
        point_cache(MemoryBackend(), ttl=0)
    with pytest.raises(ValueError, match="jitter"):
        point_cache(MemoryBackend(), jitter=1.0)


async def test_jitter_shortens_ttls_within_the_fraction() -> None:
    now = [0.0]
    backend = MemoryBackend(clock=lambda: now[0])
    cache = point_cache(backend, ttl=100.0, jitter=0.2)
    await cache.set_many({i: Point(x=i, y=i) for i in range(200)})
    now[0] = 79.9
    assert len(await cache.get_many(range(200))) == 200
    now[0] = 100.0
    assert await cache.get_many(range(200)) == {}


def test_manager_builds_each_declared_cache_once() -> None:
    manager = CacheManager(MemoryBackend(), policy=CachePolicy(ttl=5))
    spec = CacheSpec(namespace="points", key_type=int, value_type=Point)
    assert manager.cache(spec) is manager.cache(spec)
    assert manager.cache(spec).policy.ttl == 5
    with pytest.raises(ValueError, match="declared twice"):
        manager.cache(CacheSpec(namespace="points", key_type=str, value_type=Point))
    assert set(manager.stats()) == {"points"}
