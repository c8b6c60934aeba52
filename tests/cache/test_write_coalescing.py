"""Write coalescing: the cache writes of one event-loop tick go to the backend as one call (one pipeline)."""

from __future__ import annotations

import asyncio

import msgspec

from app.cache import Cache, CacheBackend, CachePolicy, CoalescingBackend, MemoryBackend
from app.cache.testing import FaultyBackend


class Item(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    version: int = 1


def _cache(backend: CacheBackend, *, versioned: bool = True) -> Cache[int, Item]:
    return Cache(
        backend, namespace="item", key_type=int, value_type=Item, policy=CachePolicy(ttl=60, jitter=0),
        version_of=(lambda item: item.version) if versioned else None,
    )  # fmt: skip


async def _load(key: int) -> Item | None:
    return Item(n=key) if key < 1000 else None


async def test_the_fills_of_a_miss_storm_are_one_write(store: CacheBackend) -> None:
    counting = FaultyBackend(store)
    coalescing = CoalescingBackend(counting)
    cache = _cache(coalescing)
    found = await asyncio.gather(*(cache.get_or_load(n, _load) for n in [*range(100), 1000, 1001]))
    assert found == [*(Item(n=n) for n in range(100)), None, None]
    # One read for the lookups, one pipeline for the 100 fills and the two "absent" entries.
    assert (counting.calls["get_many"], counting.calls["set_many_if_newer"]) == (1, 1)
    assert (coalescing.write_batches, coalescing.batched_writes) == (1, 101)
    direct = _cache(store)
    assert await direct.get_many(range(100)) == {n: Item(n=n) for n in range(100)}
    assert direct.stats.misses == 0


async def test_each_caller_gets_its_own_results_in_call_order(store: CacheBackend) -> None:
    counting = FaultyBackend(store)
    cache = _cache(CoalescingBackend(counting))
    await cache.set(1, Item(n=3, version=3))
    await asyncio.gather(
        cache.set(1, Item(n=2, version=2)),  # older than the stored 3: refused
        cache.set(2, Item(n=1)),
        cache.set(1, Item(n=4, version=4)),  # newer, and after the refused one
        cache.set(1, Item(n=1, version=1)),  # older than the 4 written just before it
    )
    assert counting.calls["set_many_if_newer"] == 2
    assert cache.stats.stale_writes == 2
    assert await cache.get_many([1, 2]) == {1: Item(n=4, version=4), 2: Item(n=1)}


async def test_unversioned_writes_are_coalesced_too(store: CacheBackend) -> None:
    counting = FaultyBackend(store)
    cache = _cache(CoalescingBackend(counting), versioned=False)
    await asyncio.gather(*(cache.set(n, Item(n=n)) for n in range(50)), cache.set_absent(50, ttl=60))
    assert counting.calls["set_many"] == 1
    assert "set_many_if_newer" not in counting.calls
    assert await cache.get_many(range(51)) == {n: Item(n=n) for n in range(50)}


async def test_a_lone_write_waits_one_yield_only() -> None:
    counting = FaultyBackend(MemoryBackend())
    cache = _cache(CoalescingBackend(counting))
    lone = asyncio.ensure_future(cache.set(1, Item(n=1)))
    for _ in range(2):  # the task starts, then the leader's one yield to the loop: no timer
        await asyncio.sleep(0)
    assert counting.calls["set_many_if_newer"] == 1
    await lone


async def test_a_failed_batch_degrades_every_caller() -> None:
    faulty = FaultyBackend(MemoryBackend(), failing=True)
    cache = _cache(CoalescingBackend(faulty))
    found = await asyncio.gather(*(cache.get_or_load(n, _load) for n in range(10)))
    assert found == [Item(n=n) for n in range(10)]  # served from the loader, the fills lost
    assert faulty.calls["set_many_if_newer"] == 1
    assert cache.stats.errors == 20  # ten failed lookups, ten failed fills
    await asyncio.gather(*(cache.set(n, Item(n=n, version=2)) for n in range(5)))
    assert faulty.calls["set_many_if_newer"] == 2
    assert cache.stats.errors == 25
    faulty.failing = False
    assert await cache.get(0) is None  # the failed application writes are remembered, not served stale


async def test_a_cancelled_leader_fails_its_followers_who_degrade() -> None:
    counting = FaultyBackend(MemoryBackend())
    cache = _cache(CoalescingBackend(counting))
    leader = asyncio.ensure_future(cache.set(1, Item(n=1)))
    follower = asyncio.ensure_future(cache.set(2, Item(n=2)))
    await asyncio.sleep(0)  # the leader waits for the tick's other writes; the follower has joined it
    leader.cancel()
    await follower  # no error: the cache counts it and remembers the key
    assert cache.stats.errors == 1
    assert "set_many_if_newer" not in counting.calls
    assert leader.cancelled()
