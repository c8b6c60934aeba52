"""The cache engine: request coalescing, batch loads, stale-while-revalidate, early refresh, the breaker."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from app.cache import (
    BreakerState,
    Cache,
    CacheBackend,
    CacheBackendError,
    CachePolicy,
    CircuitBreakerBackend,
    CoalescingBackend,
    MemoryBackend,
    NullBackend,
)
from app.cache.testing import FaultyBackend


class Item(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    version: int = 1


def item_cache(backend: CacheBackend, **options: object) -> Cache[int, Item]:
    settings: dict[str, object] = {"ttl": 60.0, "negative_ttl": 60.0, "prefix": "e", "jitter": 0.0}
    settings.update(options)
    policy = CachePolicy(**{name: settings.pop(name) for name in CachePolicy.__struct_fields__ if name in settings})  # type: ignore[arg-type]
    return Cache(backend, namespace="item", key_type=int, value_type=Item, policy=policy, **settings)  # type: ignore[arg-type]


async def test_concurrent_reads_of_one_tick_share_one_backend_call(backend: CacheBackend) -> None:
    counting = FaultyBackend(backend)
    coalescing = CoalescingBackend(counting)
    cache = item_cache(coalescing)
    await cache.set_many({n: Item(n=n) for n in range(100)})
    results = await asyncio.gather(*(cache.get(n) for n in range(100)), cache.get(5), cache.get(1000))
    assert results[:100] == [Item(n=n) for n in range(100)]
    assert results[100:] == [Item(n=5), None]
    assert counting.calls["get_many"] == 1
    assert coalescing.batched_calls == 101


async def test_a_lone_read_is_not_delayed_by_batching(backend: CacheBackend) -> None:
    counting = FaultyBackend(backend)
    cache = item_cache(CoalescingBackend(counting))
    await cache.set(1, Item(n=1))
    lone = asyncio.ensure_future(cache.get(1))
    for _ in range(2):  # the task starts, then the leader's one yield to the loop: no timer
        await asyncio.sleep(0)
    assert counting.calls["get_many"] == 1  # the read has gone to the backend
    assert await lone == Item(n=1)
    assert await cache.get(2) is None
    assert counting.calls["get_many"] == 2


async def test_a_failed_batch_is_a_miss_for_every_caller() -> None:
    faulty = FaultyBackend(MemoryBackend(), failing=True)
    cache = item_cache(CoalescingBackend(faulty))
    assert await asyncio.gather(*(cache.get(n) for n in range(10))) == [None] * 10
    assert faulty.calls["get_many"] == 1
    assert cache.stats.errors == 10


async def test_500_ids_with_50_cached_cost_one_read_and_one_load(backend: CacheBackend) -> None:
    counting = FaultyBackend(backend)
    cache = item_cache(CoalescingBackend(counting))
    await cache.set_many({n: Item(n=n) for n in range(0, 500, 10)})
    calls: list[list[int]] = []

    async def load(keys: list[int]) -> dict[int, Item]:
        calls.append(keys)
        return {key: Item(n=key) for key in keys}

    reads_before = counting.calls.get("get_many", 0)
    found = await cache.get_many_or_load(range(500), load)
    assert len(found) == 500
    assert counting.calls["get_many"] - reads_before == 1
    assert [len(keys) for keys in calls] == [450]


async def test_overlapping_batches_share_loads_per_key(backend: CacheBackend) -> None:
    cache = item_cache(backend)
    calls: list[list[int]] = []

    async def load(keys: list[int]) -> dict[int, Item]:
        calls.append(sorted(keys))
        await asyncio.sleep(0.05)
        return {key: Item(n=key) for key in keys}

    first, second = await asyncio.gather(
        cache.get_many_or_load(range(10), load), cache.get_many_or_load(range(5, 15), load)
    )
    assert set(first) == set(range(10))
    assert set(second) == set(range(5, 15))
    assert sorted(key for keys in calls for key in keys) == list(range(15))  # each key loaded once


async def test_stale_entries_are_served_while_one_caller_refreshes() -> None:
    now = [1_000_000.0]
    cache = item_cache(MemoryBackend(clock=lambda: now[0]), ttl=10.0, stale_ttl=30.0, clock=lambda: now[0])
    loads: list[int] = []
    release = asyncio.Event()

    async def load(keys: list[int]) -> dict[int, Item]:
        loads.append(len(keys))
        await release.wait()
        return {key: Item(n=key, version=2) for key in keys}

    await cache.set(1, Item(n=1))
    now[0] += 11  # past the soft TTL, within the stale window
    served = await asyncio.gather(*(cache.get_many_or_load([1], load) for _ in range(20)))
    assert served == [{1: Item(n=1)}] * 20  # nobody waited for the refresh
    assert loads == [1]
    assert cache.stats.stale_serves == 20
    release.set()
    await asyncio.sleep(0.01)
    assert await cache.get(1) == Item(n=1, version=2)  # refreshed, fresh again
    now[0] += 45  # past the stale window too: a plain miss
    assert await cache.get(1) is None


async def test_early_refresh_reloads_hot_keys_before_they_expire() -> None:
    now = [1_000_000.0]
    cache = item_cache(MemoryBackend(), ttl=10.0, early_refresh=1e9, clock=lambda: now[0])
    loads: list[list[int]] = []

    async def load(keys: list[int]) -> dict[int, Item]:
        loads.append(keys)
        return {key: Item(n=key, version=2) for key in keys}

    await cache.set(1, Item(n=1))
    assert await cache.get_many_or_load([1], load) == {1: Item(n=1)}  # served from the cache...
    await asyncio.sleep(0.01)
    assert loads == [[1]]  # ...and reloaded in the background, long before the entry expired
    assert cache.stats.refreshes == 1


async def test_a_null_backend_caches_nothing() -> None:
    cache = item_cache(NullBackend())
    loads: list[int] = []

    async def load(key: int) -> Item:
        loads.append(key)
        return Item(n=key)

    await cache.set(1, Item(n=1))
    assert await cache.get(1) is None
    assert await cache.get_or_load(1, load) == Item(n=1)
    assert await cache.get_or_load(1, load) == Item(n=1)
    assert loads == [1, 1]


async def test_breaker_opens_after_failures_and_closes_after_a_successful_probe() -> None:
    now = [0.0]
    faulty = FaultyBackend(MemoryBackend(), failing=True)
    breaker = CircuitBreakerBackend(faulty, failure_threshold=3, reset_timeout=1.0, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(CacheBackendError):
            await breaker.get_many(["k"])
    assert breaker.state is BreakerState.OPEN
    for _ in range(50):
        with pytest.raises(CacheBackendError, match="circuit open"):
            await breaker.get_many(["k"])
    assert faulty.calls["get_many"] == 3  # open: the backend is not called at all
    now[0] += 1.0
    with pytest.raises(CacheBackendError):
        await breaker.get_many(["k"])  # the probe fails: open for another second
    assert faulty.calls["get_many"] == 4
    assert breaker.state is BreakerState.OPEN
    faulty.failing = False
    with pytest.raises(CacheBackendError, match="circuit open"):
        await breaker.get_many(["k"])
    now[0] += 1.0
    assert await breaker.get_many(["k"]) == [None]  # the probe succeeds
    assert breaker.state is BreakerState.CLOSED
    assert breaker.latency["get"].count == 5


async def test_breaker_times_out_slow_calls() -> None:
    slow = FaultyBackend(MemoryBackend(), latency=0.5)
    breaker = CircuitBreakerBackend(slow, timeout=0.02, failure_threshold=2)
    for _ in range(2):
        with pytest.raises(CacheBackendError, match="timed out"):
            await breaker.get_many(["k"])
    assert breaker.state is BreakerState.OPEN
