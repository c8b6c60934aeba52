"""No stale read once δ has passed after an acknowledged write, through Redis faults: two app instances in one
process on a Redis of the test's own (stopped, restored from an old snapshot, stalled) and a database that one
of them loses. Each test fails with the fence off (`CACHE_CONSISTENCY_BOUND_MS=0`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from litestar import Litestar

from app.cache import CircuitBreakerBackend, RedisBackend
from app.cache.entry import stored_version
from app.cache.testing import FaultyBackend
from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.chaos.proxy import Proxy
from tests.servers import RedisServer

BOUND_MS = 500
BOUND = BOUND_MS / 1000


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(extra_args=("--dbfilename", "dump.rdb")).start()
    try:
        yield server
    finally:
        if server.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGCONT)
        server.close()


def _settings(redis_url: str, database_url: str, **changes: object) -> Settings:
    options: dict[str, object] = {
        "redis_url": redis_url,
        "database_url": database_url,
        "cache_consistency_bound_ms": BOUND_MS,
        "cache_stale_ttl_seconds": 0,
    }
    options.update(changes)
    return Settings(**options)  # type: ignore[arg-type]


async def _version(client: httpx.AsyncClient, user_id: int = 1) -> int | str:
    response = await client.get(f"/users/{user_id}")
    return response.json()["version"] if response.status_code == 200 else f"HTTP {response.status_code}"


async def _reads_after_the_bound(
    clients: list[httpx.AsyncClient], acked: float, stale: int, seconds: float = 1.5
) -> list[int | str]:
    """Read through every client for `seconds`; return what each read got once `acked + BOUND` had passed."""
    seen: list[int | str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for client in clients:
            started = time.monotonic()
            version = await _version(client)
            if started >= acked + BOUND:
                seen.append(version)
            else:
                assert version in (stale, stale + 1) or str(version).startswith("HTTP 503"), version
        await asyncio.sleep(0.02)
    return seen


def _faulty(server: RedisServer) -> FaultyBackend:
    """A backend on `server` that the test can make fail (`failing = True`)."""
    return FaultyBackend(CircuitBreakerBackend(RedisBackend.from_url(server.url), timeout=1.0))


def _replicas_a_faulty(server: RedisServer, sqlite_path: str) -> tuple[FaultyBackend, Litestar, Litestar]:
    """Two replicas on one Redis and one SQLite file; A's backend can be made to fail."""
    settings = _settings(server.url, f"sqlite:///{sqlite_path}")
    faulty = _faulty(server)
    return faulty, create_app(settings, cache_backend=faulty), create_app(settings)


async def test_a_replica_whose_redis_write_failed_is_corrected_by_another_replicas_sync(
    own_redis: RedisServer, sqlite_path: str
) -> None:
    faulty, app_a, app_b = _replicas_a_faulty(own_redis, sqlite_path)
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        assert await _version(b) == 1
        assert await _version(b) == 1  # cached in Redis
        faulty.failing = True  # A cannot reach Redis (for good): its write-through fails
        response = await a.patch("/users/1", json={"first_name": "Written"})
        acked = time.monotonic()
        assert response.status_code == 200
        assert response.json()["version"] == 2
        seen = await _reads_after_the_bound([b], acked, stale=1)
    assert seen
    assert set(seen) == {2}


@pytest.mark.parametrize("restore", ["older-snapshot", "empty"])
async def test_redis_restarted_with_old_or_no_data_serves_nothing_stale(
    own_redis: RedisServer, sqlite_path: str, restore: str
) -> None:
    settings = _settings(own_redis.url, f"sqlite:///{sqlite_path}")
    app_a, app_b = create_app(settings), create_app(settings)
    rdb = own_redis.workdir / "dump.rdb"
    direct = redis.Redis.from_url(own_redis.url)
    try:
        async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
            assert await _version(b) == 1
            assert await _version(b) == 1
            key = app_b.state.cache_manager.cache(USER_BY_ID).key(1)
            direct.save()  # the snapshot holds version 1
            snapshot = own_redis.workdir / "old.rdb"
            shutil.copy(rdb, snapshot)
            response = await a.patch("/users/1", json={"first_name": "Written"})
            acked = time.monotonic()
            assert response.json()["version"] == 2
            assert await _version(b) == 2
            await asyncio.sleep(BOUND)  # the restart comes after the bound: every read after it is judged
            own_redis.stop()
            if restore == "older-snapshot":
                shutil.copy(snapshot, rdb)
            else:
                rdb.unlink(missing_ok=True)
            own_redis.start()
            if restore == "older-snapshot":
                assert stored_version(direct.get(key)) == 1  # type: ignore[arg-type]  # the old entry is back
            for client in (a, b):  # another user first: the read that meets the dead connection is a miss, and
                await _version(client, 5)  # the reload it causes would repair user 1 by chance
            seen = await _reads_after_the_bound([a, b], acked, stale=1)
    finally:
        direct.close()
    assert seen
    assert set(seen) <= {2, "HTTP 503"}
    assert 2 in seen


async def test_a_replica_whose_redis_stalls_stops_trusting_its_near_cache_within_the_bound(
    own_redis: RedisServer, sqlite_path: str
) -> None:
    settings = _settings(own_redis.url, f"sqlite:///{sqlite_path}", cache_near_enabled=True, cache_near_ttl_seconds=60)
    app_a, app_b = create_app(settings), create_app(settings)
    assert own_redis.process is not None
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        await _wait(app_b.state.cache_manager.bus.connected.is_set)
        assert await _version(b) == 1
        assert await _version(b) == 1
        cache_b = app_b.state.cache_manager.cache(USER_BY_ID)
        near_hits = cache_b.stats.near_hits
        assert await _version(b) == 1
        assert cache_b.stats.near_hits == near_hits + 1  # B answers from its near cache
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            response = await a.patch("/users/1", json={"first_name": "Written"})
            acked = time.monotonic()
            assert response.json()["version"] == 2
            seen = await _reads_after_the_bound([b], acked, stale=1, seconds=2.0)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
    assert seen
    assert set(seen) == {2}


async def test_a_replica_cut_off_from_the_database_answers_503_never_stale(
    own_redis: RedisServer, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    assert parts.port is not None
    proxy = await Proxy("127.0.0.1", parts.port).start()
    via_proxy = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")))
    faulty = _faulty(own_redis)
    app_a = create_app(_settings(own_redis.url, postgres_url), cache_backend=faulty)
    app_b = create_app(_settings(own_redis.url, via_proxy, database_timeout_ms=300, database_acquire_timeout_ms=300))
    try:
        async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
            assert await _version(b) == 1
            assert await _version(b) == 1  # in Redis
            faulty.failing = True  # A's write-through is lost: Redis keeps version 1
            await proxy.cut()  # and B can no longer read the outbox (nor the users)
            response = await a.patch("/users/1", json={"first_name": "Written"})
            acked = time.monotonic()
            assert response.json()["version"] == 2
            seen = await _reads_after_the_bound([b], acked, stale=1)
    finally:
        await proxy.cut()
    assert seen
    assert set(seen) == {"HTTP 503"}


async def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_cached_absence_does_not_outlive_a_create_whose_write_through_failed(
    own_redis: RedisServer, sqlite_path: str
) -> None:
    faulty, app_a, app_b = _replicas_a_faulty(own_redis, sqlite_path)
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        assert (await b.get("/users/11")).status_code == 404  # "absent", cached for CACHE_NEGATIVE_TTL_SECONDS
        assert app_b.state.cache_manager.cache(USER_BY_ID).stats.loads == 1
        assert (await b.get("/users/11")).status_code == 404
        assert app_b.state.cache_manager.cache(USER_BY_ID).stats.loads == 1  # answered by the cached absence
        faulty.failing = True
        response = await a.post("/users", json={"first_name": "New", "last_name": "User", "email": "new@example.com"})
        acked = time.monotonic()
        assert response.status_code == 201
        assert response.json()["id"] == 11
        await asyncio.sleep(max(0.0, acked + BOUND - time.monotonic()))
        for _ in range(5):
            assert (await b.get("/users/11")).status_code == 200
