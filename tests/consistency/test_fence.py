"""`CacheFence`: the trust gate and the outbox sync, over an outbox in memory (memory and real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import NamedTuple

import msgspec
import pytest

from app.cache import (
    Cache,
    CacheBackend,
    CacheFence,
    CacheManager,
    CachePolicy,
    CacheSpec,
    MemoryBackend,
    NearCache,
    RedisBackend,
)
from app.cache.backend import WrappingBackend
from app.cache.cluster import ClusterBackend
from app.cache.config import CacheConfig
from app.cache.fence import Invalidation


class Row(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int


def _version(row: Row) -> int:
    return row.version


class Outbox:
    """What the database holds: rows with growing ids; `down` makes every read fail like a lost database."""

    def __init__(self) -> None:
        self.rows: list[Invalidation] = []
        self.down = False
        self.reads = 0

    def add(self, key: int, version: int, kind: str = "update") -> None:
        self.rows.append((len(self.rows) + 1, "row", str(key), version, kind))

    async def read_after(self, after_id: int, limit: int) -> Sequence[Invalidation]:
        self.reads += 1
        if self.down:
            raise ConnectionError("database unreachable")
        return [row for row in self.rows if row[0] > after_id][:limit]

    async def prune(self, older_than: float) -> None:
        return


def fenced_cache(backend: CacheBackend, fence: CacheFence, near: NearCache | None = None) -> Cache[int, Row]:
    cache = Cache(
        backend, namespace="row", key_type=int, value_type=Row, policy=CachePolicy(ttl=300), prefix="fence",
        version_of=_version,
        near=near, fence=fence,
    )  # fmt: skip
    fence.attach(cache, near)
    return cache


ROWS = CacheSpec(namespace="row", key_type=int, value_type=Row, version_of=_version)


class FencedCluster(NamedTuple):
    fence: CacheFence
    cluster: ClusterBackend
    outbox: Outbox
    cache: Cache[int, Row]


@asynccontextmanager
async def fenced_cluster(url: str) -> AsyncIterator[FencedCluster]:
    """A cache manager on the cluster at `url`, its fence on an `Outbox` and synced once, and a cache of rows."""
    manager = CacheManager.from_config(CacheConfig(url=url, cluster=True, consistency_bound=60.0))
    try:
        fence, cluster = manager.fence, manager.backend
        while not isinstance(cluster, ClusterBackend):
            cluster = cluster.inner  # type: ignore[attr-defined]
        assert isinstance(fence, CacheFence)
        outbox = Outbox()
        fence.reader = outbox
        cache = manager.cache(ROWS)
        assert await fence.sync()
        yield FencedCluster(fence, cluster, outbox, cache)
    finally:
        await manager.close()


async def _database(row: Row) -> Row:
    return row


async def test_nothing_is_served_from_the_cache_before_the_first_sync(backend: CacheBackend) -> None:
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    cache = fenced_cache(backend, fence)
    await cache.set(1, Row(name="a", version=1))
    assert await cache.get(1) is None
    loads: list[int] = []

    async def load(key: int) -> Row:
        loads.append(key)
        return Row(name="db", version=1)

    assert await cache.get_or_load(1, load) == Row(name="db", version=1)
    assert loads == [1]
    assert await fence.sync()
    assert await cache.get(1) == Row(name="a", version=1)


async def test_a_row_in_the_outbox_fences_an_older_cached_version(backend: CacheBackend) -> None:
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    writer = fenced_cache(backend, CacheFence(bound=60.0, reader=outbox))  # another replica, on the same backend
    cache = fenced_cache(backend, fence)
    assert await fence.sync()
    await cache.set(1, Row(name="old", version=1))
    outbox.add(1, 2)  # a write of version 2 committed; its write-through never reached the backend
    assert await cache.get(1) == Row(name="old", version=1)  # within the bound: not applied yet
    assert await fence.sync()
    assert await cache.get(1) is None  # a marker: a miss
    await writer.set(1, Row(name="old", version=1))  # a load that read the database before the write
    assert await cache.get(1) is None  # refused by the marker's version
    await writer.set(1, Row(name="new", version=2))
    assert await cache.get(1) == Row(name="new", version=2)
    assert await fence.sync()  # applying the row again changes nothing
    assert await cache.get(1) == Row(name="new", version=2)


async def test_a_delete_leaves_a_tombstone_and_a_create_replaces_a_cached_absence(backend: CacheBackend) -> None:
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    cache = fenced_cache(backend, fence)
    assert await fence.sync()
    await cache.set(1, Row(name="doomed", version=3))
    await cache.set_absent(2, ttl=60)  # "no such row", cached before it was created
    outbox.add(1, 4, "delete")
    outbox.add(2, 1, "create")
    assert await fence.sync()
    assert await cache.get_or_load(1, _never) is None  # the tombstone answers "absent" without a load
    loaded: list[int] = []

    async def created(key: int) -> Row:
        loaded.append(key)
        return Row(name="born", version=1)

    assert await cache.get_or_load(2, created) == Row(name="born", version=1)
    assert loaded == [2]


async def _never(_: int) -> Row:
    raise AssertionError("served from the cache")


async def test_trust_lapses_within_the_bound_when_the_outbox_cannot_be_read() -> None:
    outbox = Outbox()
    fence = CacheFence(bound=0.3, reader=outbox)
    near = NearCache(ttl=60.0)
    near.enabled = True
    cache = fenced_cache(MemoryBackend(), fence, near)
    assert await fence.sync()
    await cache.set(1, Row(name="a", version=1))
    assert await cache.get(1) == Row(name="a", version=1)  # a remote hit, now near
    assert await cache.get(1) == Row(name="a", version=1)
    assert cache.stats.near_hits == 1
    outbox.down = True
    assert not await fence.sync()
    await asyncio.sleep(0.35)
    assert not fence.trusted()
    assert near.get(cache.key(1)) is None  # the near cache obeys the gate too
    assert await cache.get(1) is None
    assert await cache.get_or_load(1, lambda _: _database(Row(name="db", version=1))) == Row(name="db", version=1)
    outbox.down = False
    assert await fence.sync()
    assert await cache.get(1) == Row(name="a", version=1)


async def test_a_reconnect_revokes_trust_until_a_sync_replays_the_whole_outbox(backend: CacheBackend) -> None:
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    cache = fenced_cache(backend, fence)
    outbox.add(1, 2)
    assert await fence.sync()
    await cache.set(1, Row(name="new", version=2))
    # The server restarts from a snapshot taken before the write: it holds version 1 again.
    await backend.delete_many([cache.key(1)])
    await fenced_cache(backend, CacheFence(bound=60.0, reader=outbox)).set(1, Row(name="old", version=1))
    fence.revoke()  # what the read connection's reconnect does
    assert await cache.get(1) is None  # not trusted
    assert await fence.sync()  # replays every retained row, not just the new ones
    assert await cache.get(1) is None  # version 1 is fenced by the replayed row of version 2


async def test_a_sync_that_overlaps_a_reconnect_does_not_vouch_for_the_new_connection() -> None:
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    fenced_cache(MemoryBackend(), fence)

    async def reconnect_midway() -> None:
        fence.revoke()

    fence.probe = None
    read_after = outbox.read_after

    async def read_and_reconnect(after_id: int, limit: int) -> Sequence[Invalidation]:
        rows = await read_after(after_id, limit)
        await reconnect_midway()
        return rows

    outbox.read_after = read_and_reconnect  # type: ignore[method-assign]
    assert not await fence.sync()
    assert not fence.trusted()
    outbox.read_after = read_after  # type: ignore[method-assign]
    assert await fence.sync()
    assert fence.trusted()


@pytest.mark.parametrize("bound", [0.0, -1.0])
def test_the_bound_must_be_positive(bound: float) -> None:
    with pytest.raises(ValueError, match="bound"):
        CacheFence(bound=bound)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1:26379/mymaster"], ids=["standalone", "sentinel"]
)
async def test_from_config_wires_the_fence_to_the_read_connection(url: str) -> None:
    """`CacheManager.from_config` with a bound: every (re)connect of the read connection revokes trust."""
    manager = CacheManager.from_config(CacheConfig(url=url, consistency_bound=0.4, near=True))
    try:
        fence = manager.fence
        assert fence is not None
        assert fence.reader is None  # the application gives it the outbox
        backend = manager.backend
        while isinstance(backend, WrappingBackend):
            backend = backend.inner
        assert isinstance(backend, RedisBackend)
        reads = backend.reads
        assert reads is not None
        assert reads.on_connect is not None
        assert fence.probe is not None
        assert manager.bus is not None
        assert manager.bus.ping_interval == pytest.approx(0.1)  # δ/4: a hung subscription is noticed within δ
        fence.trusted_until = float("inf")
        reads.on_connect()
        assert fence.epoch == 1
        assert not fence.trusted()
    finally:
        await manager.close()


def test_without_a_bound_there_is_no_fence() -> None:
    assert CacheManager.from_config(CacheConfig(consistency_bound=0.0)).fence is None
    assert CacheManager.from_config(CacheConfig(consistency_bound=1.0, enabled=False)).fence is None
    assert CacheManager.from_config(CacheConfig(consistency_bound=1.0)).fence is not None


async def test_a_revoke_wakes_the_background_sync_at_once() -> None:
    """A reconnect (a promotion met) costs the caches one sync's time, not up to a whole period more."""
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox, period=30.0)
    fenced_cache(MemoryBackend(), fence)
    fence.start()
    try:
        while fence.syncs < 1:  # the loop's first sync runs at once
            await asyncio.sleep(0.01)
        fence.revoke()
        assert not fence.trusted()
        async with asyncio.timeout(1.0):  # the next period would start 30 s later
            while not fence.trusted():
                await asyncio.sleep(0.01)
        assert fence.syncs == 2
    finally:
        await fence.close()


class _Straddled(WrappingBackend):
    """A backend whose next read sees a master connect during its round trip."""

    def __init__(self, inner: CacheBackend) -> None:
        super().__init__(inner)
        self.connect: str | None = None
        self.replay = False
        self.fence: CacheFence | None = None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self.inner.get_many(keys)
        if self.connect is not None and self.fence is not None:
            self.fence.withhold(self.connect)
            self.connect = None
            if self.replay:  # and the replay after that connect ends before the reply is handed out
                self.replay = False
                assert await self.fence.sync()
        return values


async def test_a_withheld_master_costs_only_its_own_keys_until_a_replay_after_its_connect() -> None:
    """Trust per master (a cluster's `withhold`): the other masters' keys keep hitting, near ones too."""
    outbox = Outbox()
    fence = CacheFence(bound=60.0, reader=outbox)
    near = NearCache(ttl=60.0)
    near.enabled = True
    backend = _Straddled(MemoryBackend())
    backend.fence = fence
    cache = fenced_cache(backend, fence, near)
    fence.locate = lambda key: "a" if key == cache.key(1) else "b"
    one, two = Row(name="one", version=1), Row(name="two", version=1)
    assert await fence.sync()
    await cache.set_many({1: one, 2: two})
    fence.withhold("a")  # master a's connection opened: perhaps a new server
    assert fence.trusted()
    assert await cache.get_many([1, 2]) == {2: two}  # a batch spanning masters: only a's reply is a miss
    assert near.get(cache.key(1)) is None  # ...and is not kept near
    assert near.get(cache.key(2)) == two
    assert await cache.get(1) is None

    read_after = outbox.read_after

    async def read_and_reconnect(after_id: int, limit: int) -> Sequence[Invalidation]:
        fence.withhold("a")  # a again, after this sync started: it does not vouch for that connection
        return await read_after(after_id, limit)

    outbox.read_after = read_and_reconnect  # type: ignore[method-assign]
    assert await fence.sync()  # global trust is extended...
    assert set(fence.withheld) == {"a"}  # ...but a stays withheld
    outbox.read_after = read_after  # type: ignore[method-assign]
    assert await fence.sync()
    assert fence.withheld == {}
    assert await cache.get(1) == one

    near.clear()
    backend.connect = "b"  # b connects while a lookup's round trip is under way: b's reply is a miss
    assert await cache.get_many([1, 2]) == {1: one}
    assert near.get(cache.key(1)) == one
    assert near.get(cache.key(2)) is None
    assert await cache.get(2) is None  # b is withheld now
    backend.connect, backend.replay = "b", True  # b connects again, and its replay ends, during a round trip
    assert await cache.get(2) is None  # not served: it may have come over the new connection, before the replay
    assert fence.withheld == {}
    assert await cache.get_many([1, 2]) == {1: one, 2: two}

    fence.revoke()  # a revoke (standalone, Sentinel) is still the whole cache's
    assert await cache.get_many([1, 2]) == {}  # near entries too
    assert fence.withheld == {}


async def test_withhold_without_a_locator_is_a_revoke() -> None:
    fence = CacheFence(bound=60.0, reader=Outbox())
    assert await fence.sync()
    fence.withhold("a")
    assert not fence.trusted()
    assert fence.withheld == {}
