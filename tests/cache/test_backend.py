"""One behaviour suite for every CacheBackend: memory and a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from app.cache import CacheBackend, Entry, MemoryBackend, RedisBackend
from app.cache.entry import entry_header, stored_version


async def test_get_many_returns_values_in_order_and_none_for_missing(backend: CacheBackend) -> None:
    await backend.set_many([Entry("a", b"1", 10_000), Entry("c", b"3", 10_000)])
    assert await backend.get_many(["a", "b", "c"]) == [b"1", None, b"3"]


async def test_empty_batches_are_no_ops(backend: CacheBackend) -> None:
    assert await backend.get_many([]) == []
    await backend.set_many([])
    await backend.delete_many([])
    assert await backend.set_many_if_newer([], []) == []


async def test_entries_expire_after_their_ttl(backend: CacheBackend) -> None:
    await backend.set_many([Entry("short", b"x", 50), Entry("long", b"y", 10_000)])
    await asyncio.sleep(0.15)
    assert await backend.get_many(["short", "long"]) == [None, b"y"]


async def test_delete_many_removes_keys_and_ignores_missing(backend: CacheBackend) -> None:
    await backend.set_many([Entry("a", b"1", 10_000), Entry("b", b"2", 10_000)])
    await backend.delete_many(["a", "nope"])
    assert await backend.get_many(["a", "b"]) == [None, b"2"]


async def test_set_overwrites(backend: CacheBackend) -> None:
    await backend.set_many([Entry("a", b"1", 10_000)])
    await backend.set_many([Entry("a", b"2", 10_000)])
    assert await backend.get_many(["a"]) == [b"2"]


async def test_binary_values_round_trip(backend: CacheBackend) -> None:
    value = bytes(range(256)) * 4
    await backend.set_many([Entry("bin", value, 10_000)])
    assert await backend.get_many(["bin"]) == [value]


async def test_large_batches_are_chunked_transparently(backend: CacheBackend) -> None:
    entries = [Entry(f"k{i}", str(i).encode(), 10_000) for i in range(2_345)]
    await backend.set_many(entries)
    keys = [entry.key for entry in entries] + ["missing"]
    assert await backend.get_many(keys) == [entry.value for entry in entries] + [None]
    await backend.delete_many(keys)
    assert set(await backend.get_many(keys)) == {None}


def _versioned(version: int, payload: bytes) -> bytes:
    return entry_header(version, 0, present=True) + payload


async def test_set_if_newer_never_replaces_a_newer_version(backend: CacheBackend) -> None:
    assert await backend.set_many_if_newer([Entry("u", _versioned(2, b"two"), 10_000)], [2]) == [True]
    assert await backend.set_many_if_newer([Entry("u", _versioned(1, b"one"), 10_000)], [1]) == [False]
    assert await backend.get_many(["u"]) == [_versioned(2, b"two")]
    assert await backend.set_many_if_newer([Entry("u", _versioned(2, b"again"), 10_000)], [2]) == [True]
    assert await backend.get_many(["u"]) == [_versioned(2, b"again")]
    assert await backend.set_many_if_newer([Entry("u", _versioned(3, b"three"), 10_000)], [3]) == [True]
    assert await backend.get_many(["u"]) == [_versioned(3, b"three")]


async def test_set_if_newer_replaces_values_without_a_version(backend: CacheBackend) -> None:
    await backend.set_many([Entry("u", b"garbage", 10_000)])
    assert await backend.set_many_if_newer([Entry("u", _versioned(1, b"one"), 10_000)], [1]) == [True]
    assert await backend.get_many(["u"]) == [_versioned(1, b"one")]


async def test_ping_answers(backend: CacheBackend) -> None:
    await backend.ping()


async def test_memory_backend_evicts_least_recently_used() -> None:
    backend = MemoryBackend(max_entries=2)
    await backend.set_many([Entry("a", b"1", 10_000), Entry("b", b"2", 10_000)])
    await backend.get_many(["a"])  # a is now more recent than b
    await backend.set_many([Entry("c", b"3", 10_000)])
    assert await backend.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    assert len(backend) == 2


async def test_memory_backend_uses_the_injected_clock() -> None:
    now = [100.0]
    backend = MemoryBackend(clock=lambda: now[0])
    await backend.set_many([Entry("a", b"1", 1_000)])
    now[0] += 0.999
    assert await backend.get_many(["a"]) == [b"1"]
    now[0] += 0.002
    assert await backend.get_many(["a"]) == [None]
    assert len(backend) == 0


def test_memory_backend_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryBackend(max_entries=0)


async def test_redis_backend_closes_the_client_it_owns(redis_url: str) -> None:
    backend = RedisBackend.from_url(redis_url)
    await backend.ping()
    await backend.close()
    await backend.close()  # idempotent


async def test_set_if_newer_compares_versions_on_every_byte(backend: CacheBackend) -> None:
    # Versions that differ only in a higher byte of the 8-byte header field, up to the exact-double limit.
    versions = [255, 256, 65_535, 65_536, 2**32, 2**40 + 1, 2**53 - 1]
    for version in versions:
        assert await backend.set_many_if_newer([Entry("u", _versioned(version, b"v"), 10_000)], [version]) == [True]
        assert await backend.set_many_if_newer(
            [Entry("u", _versioned(version - 1, b"old"), 10_000)], [version - 1]
        ) == [False]
    assert stored_version((await backend.get_many(["u"]))[0]) == versions[-1]
