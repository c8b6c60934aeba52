"""The service on a Redis Cluster and under Sentinel: deletes and healing reach Redis; failovers cost no errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import msgspec
import pytest
import redis
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.servers import RedisClusterServer, RedisServer, SentinelServer


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> Iterator[tuple[Settings, redis.Redis | redis.RedisCluster]]:
    """Settings on a flushed cluster or Sentinel setup, and a direct client on it."""
    direct: redis.Redis | redis.RedisCluster
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        direct = redis.RedisCluster.from_url(url)
    else:
        url = request.getfixturevalue("redis_sentinel_url")
        server: SentinelServer = request.getfixturevalue("redis_sentinel_server")
        port = server.current_master_port()
        assert port is not None
        direct = redis.Redis(port=port)
    sqlite_path = request.getfixturevalue("sqlite_path")
    settings = Settings(
        redis_url=url,
        redis_cluster=request.param == "cluster",
        database_url=f"sqlite:///{sqlite_path}",
        # Deletes are what this checks: without the fence, no outbox replay writes markers under deleted keys.
        cache_consistency_bound_ms=0,
    )
    try:
        yield settings, direct
    finally:
        direct.close()


async def test_deletes_and_healing_really_remove_keys(
    topology: tuple[Settings, redis.Redis | redis.RedisCluster],
) -> None:
    settings, direct = topology
    app = create_app(settings)
    # In the test's own loop: the cache is called directly below, and its connections belong to the app's loop.
    async with concurrent_client(app) as client:
        users = {n: (await client.get(f"/users/{n}")).json() for n in range(1, 11)}
        cache = app.state.cache_manager.cache(USER_BY_ID)
        keys = [cache.key(n) for n in range(1, 11)]
        assert all(direct.exists(key) for key in keys)  # spread over the masters on a cluster

        direct.set(keys[3], b"\x00\xffnot msgpack at all")
        assert (await client.get("/users/4")).json() == users[4]
        assert cache.stats.decode_errors == 1
        await cache.drain()  # the healing write runs in the background
        assert direct.get(keys[3]) != b"\x00\xffnot msgpack at all"

        await cache.delete_many(range(1, 11))
        assert cache.stats.errors == 0  # really deleted, not marked dirty after a failure
        assert sum(direct.exists(key) for key in keys) == 0

        assert (await client.patch("/users/2", json={"last_name": "Changed"})).status_code == 200
        assert (await client.get("/users/2")).json()["last_name"] == "Changed"
        assert (await client.delete("/users/3")).status_code == 204
        assert (await client.get("/users/3")).status_code == 404


async def test_a_sentinel_failover_under_load_costs_no_errors(
    sentinel_server: SentinelServer, sqlite_path: str
) -> None:
    old, new = sentinel_server.master, sentinel_server.replica
    assert old is not None
    assert new is not None
    settings = Settings(redis_url=sentinel_server.url, database_url=f"sqlite:///{sqlite_path}", cache_timeout_ms=100)
    app = create_app(settings)
    statuses: list[int] = []
    stop = asyncio.Event()
    async with concurrent_client(app) as client:
        for n in range(1, 11):
            assert (await client.get(f"/users/{n}")).status_code == 200
        cache = app.state.cache_manager.cache(USER_BY_ID)

        async def load() -> None:
            while not stop.is_set():
                responses = await asyncio.gather(*(client.get(f"/users/{n}") for n in range(1, 11)))
                statuses.extend(response.status_code for response in responses)
                await asyncio.sleep(0.005)

        workers = [asyncio.create_task(load()) for _ in range(4)]
        try:
            await asyncio.sleep(0.3)
            with redis.Redis(port=old.port) as direct:
                assert direct.wait(1, 5000) == 1
            old.stop()  # SIGKILL
            deadline = time.monotonic() + 30
            await asyncio.to_thread(sentinel_server.failover, 30)
            while sentinel_server.current_master_port() != new.port:
                assert time.monotonic() < deadline, "no failover"
                await asyncio.sleep(0.02)
            announced = time.monotonic()
            hits = cache.stats.hits
            while cache.stats.hits < hits + 20:  # hits again (not one lucky read)
                assert time.monotonic() - announced < 10, "no cache hits after the failover"
                await asyncio.sleep(0.02)
            resumed = time.monotonic() - announced
        finally:
            stop.set()
            await asyncio.gather(*workers)
    print(f"sentinel failover: {len(statuses)} requests, hits resumed {resumed * 1000:.0f} ms after the announcement")
    assert statuses
    assert {status for status in statuses if not 200 <= status < 300} == set()
    assert resumed < 4, resumed  # 2 s is the target; margin for a loaded 2-core machine


async def test_readiness_reports_each_master_and_the_listener(
    topology: tuple[Settings, redis.Redis | redis.RedisCluster], request: pytest.FixtureRequest
) -> None:
    settings, _ = topology
    app = create_app(msgspec.structs.replace(settings, cache_near_enabled=True))
    async with AsyncTestClient(app) as client:
        bus = app.state.cache_manager.bus
        deadline = time.monotonic() + 10
        while not bus.connected.is_set():
            assert time.monotonic() < deadline, "the invalidation listener did not subscribe"
            await asyncio.sleep(0.02)
        cache = (await client.get("/health/ready")).json()["cache"]
        assert cache["invalidations"] == "subscribed"
        masters = cache["masters"]
        assert len(masters) == (3 if settings.redis_cluster else 1)
        assert {master["status"] for master in masters} == {"ok"}
        if not settings.redis_cluster:  # the master the sentinels name now
            server: SentinelServer = request.getfixturevalue("redis_sentinel_server")
            assert masters[0]["address"] == f"127.0.0.1:{server.current_master_port()}"
        metrics = (await client.get("/metrics")).text
        assert 'cache_invalidation_subscribed{backend="redis"} 1.0' in metrics


async def test_a_readiness_probe_leaves_an_open_breaker_open(redis_server: RedisServer, sqlite_path: str) -> None:
    settings = Settings(redis_url=redis_server.url, database_url=f"sqlite:///{sqlite_path}", cache_timeout_ms=100)
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        redis_server.stop()
        for n in range(1, 6):
            assert (await client.get(f"/users/{n}")).status_code == 200
        breaker = app.state.cache_manager.breaker
        assert breaker.state.value == "open"
        redis_server.start()
        ready = (await client.get("/health/ready")).json()["cache"]
        assert ready["status"] == "ok"  # Redis answers again...
        assert ready["breaker"] == "open"  # ...but only traffic closes the circuit
        assert breaker.state.value == "open"


async def test_a_cluster_failover_under_load_costs_no_errors(
    cluster_server: RedisClusterServer, sqlite_path: str
) -> None:
    settings = Settings(
        redis_url=cluster_server.url,
        redis_cluster=True,
        database_url=f"sqlite:///{sqlite_path}",
        cache_timeout_ms=100,
        cache_near_enabled=True,
    )
    app = create_app(settings)
    statuses: list[int] = []
    stop = asyncio.Event()
    async with concurrent_client(app) as client:
        for n in range(1, 11):
            assert (await client.get(f"/users/{n}")).status_code == 200
        cache = app.state.cache_manager.cache(USER_BY_ID)

        async def load() -> None:
            while not stop.is_set():
                responses = await asyncio.gather(
                    *(client.get(f"/users/{n}") for n in range(1, 11)),
                    client.get("/users/batch", params={"ids": "1,2,3,4,5,6,7,8,9,10"}),
                    client.patch("/users/5", json={"last_name": f"L{len(statuses)}"}),
                )
                statuses.extend(response.status_code for response in responses)
                await asyncio.sleep(0.005)

        workers = [asyncio.create_task(load()) for _ in range(4)]
        try:
            await asyncio.sleep(0.3)
            victim = cluster_server.node_for(cache.key(1))
            victim.stop()  # SIGKILL
            await asyncio.to_thread(cluster_server.wait_ok, 30)
            promoted = time.monotonic()
            hits = cache.stats.hits
            while cache.stats.hits < hits + 20:
                assert time.monotonic() - promoted < 15, "no cache hits after the promotion"
                await asyncio.sleep(0.02)
            resumed = time.monotonic() - promoted
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        ready = (await client.get("/health/ready")).json()["cache"]
    print(f"cluster failover: {len(statuses)} requests, hits again {resumed * 1000:.0f} ms after cluster_state:ok")
    assert statuses
    assert {status for status in statuses if not 200 <= status < 300} == set()
    assert ready["invalidations"] == "subscribed"
