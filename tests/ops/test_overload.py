"""Item 11: event-loop lag is not a Redis failure, and a worker sheds load beyond its in-flight bound."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis

from app.cache import CircuitBreakerBackend, CoalescingBackend, RedisBackend
from app.cache.backend import CacheBackend, CacheBackendError
from app.cache.breaker import BreakerState
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
