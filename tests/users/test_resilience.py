"""The service keeps answering from the database when Redis dies, and uses Redis again when it returns."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import redis
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.servers import RedisServer

UUID_OF = {n: f"550e8400-e29b-41d4-a716-4466554400{n:02d}" for n in range(1, 11)}


async def test_requests_survive_a_redis_outage_and_the_cache_recovers(
    redis_server: RedisServer, sqlite_path: str
) -> None:
    settings = Settings(redis_url=redis_server.url, database_url=f"sqlite:///{sqlite_path}", cache_timeout_ms=100)
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        expected = {n: (await client.get(f"/users/{n}")).json() for n in range(1, 11)}
        assert all(body["uuid"] == UUID_OF[n] for n, body in expected.items())
        user_cache = app.state.cache_manager.cache(USER_BY_ID)

        async def check(n: int) -> None:
            by_id = await client.get(f"/users/{n}")
            by_uuid = await client.get(f"/users/uuid/{UUID_OF[n]}")
            assert (by_id.status_code, by_uuid.status_code) == (200, 200)
            assert by_id.json() == by_uuid.json() == expected[n]

        redis_server.stop()
        started = time.perf_counter()
        for _ in range(10):
            await asyncio.gather(*(check(n) for n in range(1, 11)))
        outage_elapsed = time.perf_counter() - started
        # 200 requests: with the breaker open they never wait on Redis one by one.
        assert outage_elapsed < 5, outage_elapsed
        assert user_cache.stats.errors > 0

        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["cache"]["status"] == "degraded"

        redis_server.start()
        direct = redis.Redis.from_url(redis_server.url)
        try:
            deadline = time.monotonic() + 10
            while not direct.exists(user_cache.key(3)):
                assert time.monotonic() < deadline, "the cache was not used again after Redis came back"
                await check(3)
                await asyncio.sleep(0.05)
            recovered_in = time.monotonic() - (deadline - 10)
            assert recovered_in < 3, recovered_in
            hits = user_cache.stats.hits
            await check(3)
            assert user_cache.stats.hits == hits + 2
        finally:
            direct.close()
        ready = await client.get("/health/ready")
        assert ready.json()["cache"]["status"] == "ok"


async def test_garbage_under_a_cache_key_is_healed_by_the_next_read(
    redis_url: str, redis_client: redis.Redis, sqlite_path: str
) -> None:
    settings = Settings(redis_url=redis_url, database_url=f"sqlite:///{sqlite_path}")
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        good = (await client.get("/users/4")).json()
        user_cache = app.state.cache_manager.cache(USER_BY_ID)
        key = user_cache.key(4)
        assert redis_client.exists(key)

        redis_client.set(key, b"\x00\xffnot msgpack at all")
        response = await client.get("/users/4")
        assert response.status_code == 200
        assert response.json() == good
        assert user_cache.stats.decode_errors == 1
        healed = redis_client.get(key)
        assert healed is not None
        assert healed != b"\x00\xffnot msgpack at all"

        hits = user_cache.stats.hits
        assert (await client.get("/users/4")).json() == good
        assert user_cache.stats.hits == hits + 1


async def test_a_hung_redis_costs_one_timeout_not_one_per_request(redis_server: RedisServer, sqlite_path: str) -> None:
    settings = Settings(redis_url=redis_server.url, database_url=f"sqlite:///{sqlite_path}", cache_timeout_ms=50)
    app = create_app(settings)
    async with concurrent_client(app) as client:
        for n in range(1, 11):
            assert (await client.get(f"/users/{n}")).status_code == 200
        assert redis_server.process is not None
        breaker = app.state.cache_manager.breaker
        reads_before = breaker.latency["get"].count
        os.kill(redis_server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:

            async def timed(n: int) -> float:
                started = time.perf_counter()
                response = await client.get(f"/users/{n % 10 + 1}")
                assert response.status_code == 200
                assert response.json()["id"] == n % 10 + 1
                return time.perf_counter() - started

            burst = await asyncio.gather(*(timed(n) for n in range(100)))  # concurrent: one batched read times out
            reads_in_burst = breaker.latency["get"].count - reads_before
            calls_before = sum(histogram.count for histogram in breaker.latency.values())
            sequential = [await timed(n) for n in range(100)]  # then the breaker is open: no waiting at all
            calls_while_open = sum(histogram.count for histogram in breaker.latency.values()) - calls_before
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        sequential.sort()
        print(
            f"hung Redis: burst of 100 max {max(burst) * 1000:.0f} ms; sequential p50 {sequential[50] * 1000:.1f} ms,"
            f" p99 {sequential[98] * 1000:.1f} ms, max {sequential[-1] * 1000:.1f} ms"
        )
        assert max(burst) < 2.0
        assert reads_in_burst == 1  # the 100 requests' reads went out as one batch, and timed out once
        assert calls_while_open <= 1  # at most the breaker's one probe reached the hung Redis
        assert sequential[50] < 0.02  # far below the 50 ms timeout: requests do not wait on Redis
        assert sum(1 for t in sequential if t >= 0.05) <= 3  # at most the failures that open the breaker
