"""The backend and the invalidation listener on a Redis Cluster: start-up, a master's death, health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from redis.asyncio import RedisCluster

from app.cache import CacheBackendError, Entry, InvalidationBus, NearCache, RedisBackend
from tests.servers import RedisClusterServer

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
    backend = RedisBackend.from_url(cluster_server.url, cluster=True, socket_timeout=0.3)
    try:
        nodes = await backend.nodes_health()
        assert sorted(node.address for node in nodes) == sorted(f"127.0.0.1:{n.port}" for n in cluster_server.masters())
        assert {node.status for node in nodes} == {"ok"}
        victim = cluster_server.masters()[0]
        victim.stop()
        nodes = await backend.nodes_health()
        down = [node for node in nodes if node.status == "down"]
        assert [node.address for node in down] == [f"127.0.0.1:{victim.port}"]
        assert len(nodes) == 3
    finally:
        await backend.close()


async def test_many_versioned_writes_at_once_share_connections(redis_cluster_url: str) -> None:
    # One EVALSHA per key, each on its own connection, ran out of connections (MaxConnectionsError) at 200.
    backend = RedisBackend.from_url(redis_cluster_url, cluster=True, max_connections=4)
    try:
        entries = [Entry(f"v{i}", b"\x92\xcf" + i.to_bytes(8, "big"), 10_000) for i in range(1_000)]
        written = await asyncio.gather(  # two callers: each pipelines to each node over one connection
            *(backend.set_many_if_newer(entries[i : i + 500], list(range(i, i + 500))) for i in (0, 500))
        )
        assert [flag for chunk in written for flag in chunk] == [True] * 1_000
        assert await backend.get_many([entry.key for entry in entries]) == [entry.value for entry in entries]
    finally:
        await backend.close()


async def test_any_client_error_becomes_a_backend_error(redis_cluster_url: str) -> None:
    backend = RedisBackend.from_url(redis_cluster_url, cluster=True)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'writelines'")

    try:
        backend.client.mget_nonatomic = broken  # type: ignore[method-assign]
        backend.client.pipeline = lambda **_: (_ for _ in ()).throw(RuntimeError("handler is closed"))  # type: ignore[method-assign]
        with pytest.raises(CacheBackendError, match="AttributeError"):
            await backend.get_many(["a"])
        with pytest.raises(CacheBackendError, match="RuntimeError: handler is closed"):
            await backend.set_many([Entry("a", b"1", 1_000)])
        with pytest.raises(CacheBackendError, match="RuntimeError"):
            await backend.delete_many(["a"])
    finally:
        del backend.client.mget_nonatomic  # pyright: ignore[reportAttributeAccessIssue]
        del backend.client.pipeline
        await backend.close()
