"""Item 11: event-loop lag is not a Redis failure, and a worker sheds load beyond its in-flight bound."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Sequence

import pytest
import redis
from litestar.datastructures import State

from app.cache import CacheManager, CircuitBreakerBackend, CoalescingBackend, MemoryBackend, RedisBackend
from app.cache.backend import CacheBackend, CacheBackendError
from app.cache.breaker import BreakerState
from app.config import Settings
from app.metrics import CacheMetricsCollector
from app.server import create_app
from tests.asgi import concurrent_client
from tests.servers import RedisServer


def block_the_loop(seconds: float) -> asyncio.Task[None]:
    async def block() -> None:
        time.sleep(seconds)  # a synchronous call in another task: the whole event loop stalls

    return asyncio.create_task(block())


@pytest.mark.parametrize("coalesce", [False, True])
async def test_a_blocked_event_loop_does_not_open_the_breaker(
    redis_url: str, redis_client: redis.Redis, coalesce: bool
) -> None:
    redis_client.set("k", b"v")
    breaker = CircuitBreakerBackend(RedisBackend.from_url(redis_url), timeout=0.05, failure_threshold=2)
    backend: CacheBackend = CoalescingBackend(breaker) if coalesce else breaker
    try:
        assert await backend.get_many(["k"]) == [b"v"]  # connected
        for _ in range(4):
            read = asyncio.create_task(backend.get_many(["k"]))
            await asyncio.sleep(0)  # the read sends its command
            blocker = block_the_loop(0.3)  # six times the timeout: Redis answers meanwhile, the loop is busy
            assert await read == [b"v"]  # served from Redis, not degraded to a miss
            await blocker
        assert breaker.state is BreakerState.CLOSED
        assert breaker.last_error is None
    finally:
        await backend.close()


async def test_a_hung_redis_still_opens_the_breaker(redis_server: RedisServer) -> None:
    breaker = CircuitBreakerBackend(RedisBackend.from_url(redis_server.url), timeout=0.05, failure_threshold=2)
    try:
        assert await breaker.get_many(["k"]) == [None]
        assert redis_server.process is not None
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            for _ in range(2):
                with pytest.raises(CacheBackendError, match="timed out"):
                    await breaker.get_many(["k"])
            assert breaker.state is BreakerState.OPEN
            assert breaker.lag_timeouts == 0
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
    finally:
        await breaker.close()


async def test_a_hung_redis_under_a_lagging_loop_is_bounded_and_not_counted(redis_server: RedisServer) -> None:
    breaker = CircuitBreakerBackend(RedisBackend.from_url(redis_server.url), timeout=0.05, failure_threshold=1)
    try:
        assert await breaker.get_many(["k"]) == [None]
        assert redis_server.process is not None
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            stop = asyncio.Event()

            async def lag() -> None:
                while not stop.is_set():
                    time.sleep(0.03)  # every loop iteration is late by more than a quarter of the timeout
                    await asyncio.sleep(0)

            lagging = asyncio.create_task(lag())
            started = time.monotonic()
            with pytest.raises(CacheBackendError):
                await breaker.get_many(["k"])
            stop.set()
            await lagging
            assert time.monotonic() - started < 5  # bounded (10 x 50 ms, plus the lag), never hangs
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
    finally:
        await breaker.close()


class GatedBackend(MemoryBackend):
    """A memory backend whose reads wait for a gate: requests stay in flight until the test opens it."""

    __slots__ = ("gate", "waiting")

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.waiting += 1
        await self.gate.wait()
        return await super().get_many(keys)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_requests_beyond_the_in_flight_bound_get_503_with_retry_after(sqlite_path: str) -> None:
    settings = Settings(database_url=f"sqlite:///{sqlite_path}", max_in_flight=2, overload_retry_after_seconds=3)
    backend = GatedBackend()
    app = create_app(settings, cache_backend=backend)
    async with concurrent_client(app) as client:
        held = [asyncio.create_task(client.get(f"/users/{n}")) for n in (1, 2)]
        await until(lambda: backend.waiting == 2)

        async with asyncio.timeout(10):  # answered at once, not held behind the gate
            shed = await client.get("/users/3", headers={"X-Request-ID": "shed-1"})
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "3"
        assert shed.headers["content-type"] == "application/problem+json"
        assert shed.headers["x-request-id"] == "shed-1"
        assert shed.json()["status"] == 503
        assert shed.json()["title"] == "Service Unavailable"
        assert (await client.post("/users", json={})).status_code == 503

        # Probes and scrapes are exempt: they see the overloaded worker as it is.
        assert (await client.get("/health/live")).status_code == 200
        scrape = await client.get("/metrics")
        assert scrape.status_code == 200
        assert "http_requests_shed_total 2.0" in scrape.text

        backend.gate.set()
        assert [response.status_code for response in await asyncio.gather(*held)] == [200, 200]
        assert (await client.get("/users/3")).status_code == 200  # below the bound again


async def test_no_bound_when_max_in_flight_is_zero(sqlite_path: str) -> None:
    settings = Settings(database_url=f"sqlite:///{sqlite_path}", max_in_flight=0)
    backend = GatedBackend()
    app = create_app(settings, cache_backend=backend)
    async with concurrent_client(app) as client:
        held = [asyncio.create_task(client.get(f"/users/{n}")) for n in range(1, 11)]
        await until(lambda: backend.waiting == 10)
        backend.gate.set()
        assert {response.status_code for response in await asyncio.gather(*held)} == {200}


class SilentBackend(MemoryBackend):
    """A backend that never answers a read."""

    __slots__ = ()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_timeouts_during_loop_lag_are_counted_apart_and_do_not_open_the_breaker() -> None:
    breaker = CircuitBreakerBackend(SilentBackend(), timeout=0.05, failure_threshold=1)
    stop = asyncio.Event()

    async def lag() -> None:
        while not stop.is_set():
            time.sleep(0.1)  # every timer fires at least a timeout late
            await asyncio.sleep(0)

    lagging = asyncio.create_task(lag())
    await asyncio.sleep(0)
    with pytest.raises(CacheBackendError, match="event loop lagging"):
        await breaker.get_many(["k"])
    stop.set()
    await lagging
    assert breaker.lag_timeouts == 1
    assert breaker.state is BreakerState.CLOSED

    manager = CacheManager(breaker)
    families = {family.name: family for family in CacheMetricsCollector(State({"cache_manager": manager})).collect()}
    assert families["cache_breaker_lag_timeouts"].samples[0].value == 1

    with pytest.raises(CacheBackendError, match="timed out"):  # the same silence on a prompt loop is a failure
        await breaker.get_many(["k"])
    assert breaker.state is BreakerState.OPEN
