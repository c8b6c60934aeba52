"""The near cache (L1) across two app instances sharing one Redis, and what happens when pub/sub drops."""

from __future__ import annotations

import asyncio
import time

import redis

from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.servers import RedisServer


async def wait_for(condition: object, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def test_a_write_through_one_instance_is_never_stale_through_the_other(
    redis_url: str, redis_client: redis.Redis, sqlite_path: str
) -> None:
    settings = Settings(
        redis_url=redis_url,
        database_url=f"sqlite:///{sqlite_path}",
        cache_near_enabled=True,
        cache_near_ttl_seconds=60,  # long: only invalidations can make the other instance see the write
    )
    app_a, app_b = create_app(settings), create_app(settings)
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        bus_b = app_b.state.cache_manager.bus
        await wait_for(app_a.state.cache_manager.bus.connected.is_set)
        await wait_for(bus_b.connected.is_set)
        cache_b = app_b.state.cache_manager.cache(USER_BY_ID)

        propagation: list[float] = []
        for round_ in range(20):
            before = (await b.get("/users/1")).json()
            assert (await b.get("/users/1")).json() == before  # a remote hit: now in B's near cache
            near_hits = cache_b.stats.near_hits
            assert (await b.get("/users/1")).json() == before
            assert cache_b.stats.near_hits == near_hits + 1  # answered from B's near cache

            received = bus_b.received
            acked = time.monotonic()
            response = await a.patch("/users/1", json={"first_name": f"Ada{round_}"})
            assert response.status_code == 200
            version = response.json()["version"]
            assert version == before["version"] + 1
            await wait_for(lambda received=received: bus_b.received > received)
            propagation.append(time.monotonic() - acked)
            for _ in range(5):  # once the invalidation has arrived, B never shows the old row again
                assert (await b.get("/users/1")).json()["version"] == version
        propagation.sort()
        print(
            f"near-cache invalidation propagation: median {propagation[10] * 1000:.2f} ms,"
            f" max {propagation[-1] * 1000:.2f} ms"
        )
        assert propagation[-1] < 1.0


async def test_near_caches_are_off_while_the_subscription_is_down(redis_server: RedisServer, sqlite_path: str) -> None:
    settings = Settings(
        redis_url=redis_server.url,
        database_url=f"sqlite:///{sqlite_path}",
        cache_near_enabled=True,
        cache_timeout_ms=100,
    )
    app = create_app(settings)
    async with concurrent_client(app) as client:
        manager = app.state.cache_manager
        await wait_for(manager.bus.connected.is_set)
        cache = manager.cache(USER_BY_ID)
        for _ in range(3):  # load, remote hit (fills the near cache), near hit
            assert (await client.get("/users/2")).status_code == 200
        assert cache.stats.near_hits == 1

        redis_server.stop()
        await wait_for(lambda: not manager.bus.connected.is_set())
        near_hits = cache.stats.near_hits
        for _ in range(5):
            assert (await client.get("/users/2")).json()["id"] == 2  # from the database
        assert cache.stats.near_hits == near_hits  # the near cache was cleared and is off

        redis_server.start()
        await wait_for(manager.bus.connected.is_set)
        deadline = time.monotonic() + 10
        while cache.stats.near_hits == near_hits:  # back on once Redis answers again
            assert time.monotonic() < deadline, "the near cache did not come back"
            assert (await client.get("/users/2")).json()["id"] == 2
            await asyncio.sleep(0.05)
