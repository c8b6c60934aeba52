"""The backend and the invalidation listener on a Redis Cluster: start-up, a master's death, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import NodesManager

from app.cache import (
    BreakerState,
    CacheBackendError,
    CacheManager,
    ClusterBackend,
    CoalescingBackend,
    Entry,
    InvalidationBus,
    NearCache,
)
from app.cache.cluster import _NodeBackend  # pyright: ignore[reportPrivateUsage]
from app.cache.config import CacheConfig
from app.cache.entry import HEADER_SIZE
from tests.servers import RedisClusterServer, key_slot

CHANNEL = "test:invalidations"


async def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> float:
    """Wait until `condition()`; return how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_the_listener_subscribes_on_a_cold_cluster_client(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_cluster_url)  # knows no slots yet: subscribing used to die of KeyError
    publisher = RedisCluster.from_url(redis_cluster_url)
    bus = InvalidationBus(client, CHANNEL)
    near = NearCache(ttl=60.0)
    bus.attach(near)
    bus.start()
    try:
        await wait_for(bus.connected.is_set, 10)
        assert bus.state == "subscribed"
        assert near.enabled
        near.put("k", "v", near.epoch)
        sender = InvalidationBus(publisher, CHANNEL)
        await wait_for(lambda: bus.received > 0 or (asyncio.ensure_future(sender.publish(["k"])) and False), 10)
        assert near.get("k") is None
    finally:
        await bus.close()
        await client.aclose()
        await publisher.aclose()


async def test_the_listener_follows_a_promotion_and_logs_once(
    cluster_server: RedisClusterServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = RedisCluster.from_url(cluster_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    bus = InvalidationBus(client, CHANNEL, ping_interval=0.2)
    bus.start()
    try:
        await wait_for(bus.connected.is_set, 10)
        victim = next(node for node in cluster_server.masters() if f"127.0.0.1:{node.port}" == bus.subscribed_to)
        with caplog.at_level(logging.WARNING, logger="app.cache.invalidation"):
            victim.stop()  # SIGKILL
            await wait_for(lambda: not bus.connected.is_set(), 10)
            assert bus.state == "retrying"
            await asyncio.to_thread(cluster_server.wait_ok, 30)  # a replica was promoted
            promoted = time.monotonic()
            await wait_for(bus.connected.is_set, 15)
            resubscribed = time.monotonic() - promoted
        print(f"listener resubscribed {resubscribed * 1000:.0f} ms after cluster_state:ok")
        assert resubscribed < 4, resubscribed  # 2 s is the target; margin for a loaded machine
        assert bus.subscribed_to != f"127.0.0.1:{victim.port}"
        lost = [record for record in caplog.records if "invalidations lost" in record.getMessage()]
        assert len(lost) == 1, [record.getMessage() for record in lost]
        assert bus.failures >= 1
    finally:
        await bus.close()
        await client.aclose()


async def test_health_reports_each_master_and_a_dead_one(cluster_server: RedisClusterServer) -> None:
    backend = ClusterBackend.from_url(cluster_server.url, socket_timeout=0.3)
    try:
        nodes = await backend.nodes_health()
        assert sorted(node.address for node in nodes) == sorted(f"127.0.0.1:{n.port}" for n in cluster_server.masters())
        assert {node.status for node in nodes} == {"ok"}
        assert {node.breaker for node in nodes} == {"closed"}
        victim = cluster_server.masters()[0]
        victim.stop()
        nodes = await backend.nodes_health()
        down = [node for node in nodes if node.status == "down"]
        assert [node.address for node in down] == [f"127.0.0.1:{victim.port}"]
        assert len(nodes) == 3
    finally:
        await backend.close()


async def test_many_versioned_writes_at_once_are_pipelined_per_master(redis_cluster_url: str) -> None:
    # One EVALSHA per key, each on its own connection, ran out of connections (MaxConnectionsError) at 200.
    backend = ClusterBackend.from_url(redis_cluster_url, timeout=2.0, chunk_size=100)
    try:
        entries = [
            Entry(f"v{i}", b"\x92\xcf" + i.to_bytes(8, "big") + bytes(HEADER_SIZE), 10_000) for i in range(1_000)
        ]
        written = await asyncio.gather(  # 20 callers at once, each pipelining to each master
            *(backend.set_many_if_newer(entries[i : i + 50], list(range(i, i + 50))) for i in range(0, 1_000, 50))
        )
        assert [flag for chunk in written for flag in chunk] == [True] * 1_000
        assert await backend.get_many([entry.key for entry in entries]) == [entry.value for entry in entries]
        older = [Entry(entry.key, b"old", 10_000) for entry in entries[:10]]
        assert await backend.set_many_if_newer(older, [0] * 10) == [True] + [False] * 9  # v0 is the same version
        assert {node.connection.connects for node in _node_backends(backend)} == {1}  # one connection per master
    finally:
        await backend.close()


async def test_a_master_that_forgot_the_script_gets_it_again(redis_cluster_url: str) -> None:
    backend = ClusterBackend.from_url(redis_cluster_url, timeout=2.0)
    try:
        entries = [Entry(f"s{i}", b"\x92\xcf" + i.to_bytes(8, "big"), 10_000) for i in range(30)]
        assert await backend.set_many_if_newer(entries, list(range(30))) == [True] * 30
        for node in _node_backends(backend):
            await node.connection.execute("SCRIPT", "FLUSH")
        assert await backend.set_many_if_newer(entries, list(range(30))) == [True] * 30
    finally:
        await backend.close()


async def test_any_connection_error_becomes_a_backend_error(
    redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ClusterBackend.from_url(redis_cluster_url)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    def broken_now(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'write'")

    class Broken:
        pipeline = staticmethod(broken)
        submit = staticmethod(broken_now)  # reads send without waiting, then wait for every master at once

        async def close(self) -> None:
            pass

    try:
        await backend.refresh()
        for node in _node_backends(backend):
            node.connection = Broken()  # type: ignore[assignment]
        with pytest.raises(CacheBackendError, match="AttributeError"):
            await backend.get_many(["a", "b", "c", "d"])
        with pytest.raises(CacheBackendError, match="AttributeError"):
            await backend.set_many([Entry("a", b"1", 1_000)])
        with pytest.raises(CacheBackendError, match="AttributeError"):
            await backend.delete_many(["a"])
        monkeypatch.setattr(NodesManager, "initialize", broken)  # the slot map refresh
        with pytest.raises(CacheBackendError, match="AttributeError"):
            await backend.refresh()
    finally:
        await backend.close()


def _node_backends(backend: ClusterBackend) -> list[_NodeBackend]:
    nodes = [breaker.inner for breaker in backend.nodes.values()]
    assert all(isinstance(node, _NodeBackend) for node in nodes)
    return cast("list[_NodeBackend]", nodes)


async def test_a_stalled_master_costs_only_its_keys_and_fails_fast_once_open(
    cluster_server: RedisClusterServer,
) -> None:
    backend = ClusterBackend.from_url(cluster_server.url, timeout=0.1)
    entries = [Entry(f"iso{i}", f"value{i}".encode(), 60_000) for i in range(60)]
    keys = [entry.key for entry in entries]
    victim = cluster_server.node_for(keys[0])
    assert victim.process is not None
    on_victim = {key for key in keys if cluster_server.node_for(key) is victim}
    address = f"127.0.0.1:{victim.port}"
    expected = [None if entry.key in on_victim else entry.value for entry in entries]
    try:
        await backend.set_many(entries)
        assert await backend.get_many(keys) == [entry.value for entry in entries]
        os.kill(victim.process.pid, signal.SIGSTOP)  # hung, not refused: every read of its keys would time out
        try:
            for _ in range(3):  # the breaker's failure threshold
                started = time.monotonic()
                values = await backend.get_many(keys)
                assert time.monotonic() - started >= 0.09  # waited for the victim's timeout...
                assert values == expected
            assert backend.nodes[address].state is BreakerState.OPEN  # ...three times, then its breaker opened
            assert {node.state for a, node in backend.nodes.items() if a != address} == {BreakerState.CLOSED}
            assert backend.state is BreakerState.OPEN
            started = time.monotonic()
            values = await backend.get_many(keys)
            assert time.monotonic() - started < 0.05  # fails fast
            assert values == expected
            with pytest.raises(CacheBackendError, match="circuit open"):
                await backend.set_many(entries)  # writes to the others are applied; the caller learns of the rest
            await backend.nodes_health()  # a readiness probe...
            with pytest.raises(CacheBackendError):
                await backend.ping()
            assert backend.nodes[address].state is BreakerState.OPEN  # ...changes no breaker
        finally:
            os.kill(victim.process.pid, signal.SIGCONT)
    finally:
        await backend.close()


async def test_the_node_hook_fires_for_each_master_connection_and_a_promoted_replica(
    cluster_server: RedisClusterServer,
) -> None:
    backend = ClusterBackend.from_url(cluster_server.url, timeout=0.2)
    connected: list[str] = []
    backend.on_node_connect = connected.append
    keys = [f"hook{i}" for i in range(30)]
    try:
        await backend.set_many([Entry(key, b"v", 60_000) for key in keys])
        masters = sorted(f"127.0.0.1:{node.port}" for node in cluster_server.masters())
        assert sorted(connected) == masters  # one connection per master
        victim = cluster_server.node_for(keys[0])
        with redis.Redis(port=victim.port) as direct:
            assert direct.wait(1, 5000) == 1  # its replica has the keys
        victim.stop()  # SIGKILL
        promoted = f"127.0.0.1:{(await asyncio.to_thread(cluster_server.wait_promoted, keys[0])).port}"
        deadline = time.monotonic() + 5
        while True:  # the first reads after the promotion fail (a stale slot map, which they refresh)
            with contextlib.suppress(CacheBackendError):
                if (await backend.get_many(keys[:1]))[0] is not None:
                    break
            assert time.monotonic() < deadline, "the promoted replica's keys never hit"
            await asyncio.sleep(0.05)
        assert promoted in connected[len(masters) :]
        assert f"127.0.0.1:{victim.port}" not in backend.nodes
    finally:
        await backend.close()


async def test_from_config_wires_each_master_connection_to_the_fence(redis_cluster_url: str) -> None:
    manager = CacheManager.from_config(CacheConfig(url=redis_cluster_url, cluster=True, consistency_bound=1.0))
    try:
        backend = manager.backend.inner if isinstance(manager.backend, CoalescingBackend) else manager.backend
        assert isinstance(backend, ClusterBackend)
        fence = manager.fence
        assert fence is not None
        assert fence.probe is not None
        before = fence.epoch
        await fence.probe()  # opens every master's connection
        assert fence.epoch == before + 3  # one revoke per master
        assert manager.breaker is backend
    finally:
        await manager.close()


async def test_a_stale_slot_map_is_refreshed_on_moved_and_the_call_sent_again(redis_cluster_url: str) -> None:
    backend = ClusterBackend.from_url(redis_cluster_url, timeout=1.0)
    key = "moved-key"
    try:
        await backend.set_many([Entry(key, b"v", 60_000)])
        slots = backend._slots  # pyright: ignore[reportPrivateUsage]
        assert slots is not None
        slot = key_slot(key.encode())
        owner = slots[slot]
        wrong = next(node for node in backend.nodes.values() if node is not owner)
        for call in range(2):
            slots = backend._slots  # pyright: ignore[reportPrivateUsage]
            assert slots is not None
            slots[slot] = wrong  # as after a resharding: the other master answers MOVED
            refreshes = backend.refreshes
            if call == 0:
                assert await backend.get_many([key]) == [b"v"]
            else:
                await backend.delete_many([key])
            assert backend.refreshes == refreshes + 1
        assert await backend.get_many([key]) == [None]  # the delete reached the owner
        assert wrong.state is BreakerState.CLOSED  # a redirection is not a failure
    finally:
        await backend.close()


async def test_a_read_across_masters_is_sent_to_all_then_awaited_in_the_callers_task(redis_cluster_url: str) -> None:
    # It used to be one task (and one timer) per master; a cluster read now costs as few as a standalone one.
    backend = ClusterBackend.from_url(redis_cluster_url, timeout=1.0)
    keys = [f"fanout{i}" for i in range(30)]
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    created: list[object] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        created.append(coro)
        return factory(loop, coro, **kwargs) if factory is not None else asyncio.Task(coro, loop=loop, **kwargs)

    try:
        await backend.set_many([Entry(key, key.encode(), 60_000) for key in keys])
        assert len({backend._slots[key_slot(key.encode())] for key in keys}) == 3  # pyright: ignore[reportOptionalSubscript, reportPrivateUsage]
        loop.set_task_factory(counting)  # pyright: ignore[reportArgumentType]
        try:
            values = await backend.get_many(keys)
            single = await backend.get_many(keys[:1])
        finally:
            loop.set_task_factory(factory)
        assert values == [key.encode() for key in keys]
        assert single == [keys[0].encode()]
        assert created == []
        latency = backend.latency["get"]
        assert latency.count == 3 + 1  # every master's part is still timed by its breaker
    finally:
        await backend.close()
