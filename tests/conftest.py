from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.cache import CacheBackend, CircuitBreakerBackend, MemoryBackend, RedisBackend
from app.config import Settings
from app.server import create_app
from tests.servers import HOW_TO_PROVIDE_REDIS, RedisServer, redis_available_without_binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server for the whole run: our own redis-server, else testcontainers, else REDIS_URL."""
    if shutil.which("redis-server"):
        server = RedisServer().start()
        try:
            yield server.url
        finally:
            server.close()
        return
    source = redis_available_without_binary()
    if source is None:
        pytest.fail(HOW_TO_PROVIDE_REDIS)
    if source != "testcontainers":
        yield source
        return
    from testcontainers.redis import RedisContainer

    with ExitStack() as stack:
        container = stack.enter_context(RedisContainer("redis:7-alpine"))
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client on the shared server; the database is flushed before each test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and restart (fault injection)."""
    if not shutil.which("redis-server"):
        pytest.fail(HOW_TO_PROVIDE_REDIS + " Fault-injection tests need the redis-server binary.")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    """Each backend in turn, empty."""
    if request.param == "memory":
        yield MemoryBackend(max_entries=10_000)
        return
    request.getfixturevalue("redis_client")  # flushes the database
    backend = CircuitBreakerBackend(RedisBackend.from_url(request.getfixturevalue("redis_url")), timeout=1.0)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "users.db")


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, sqlite_path: str) -> Settings:
    """Settings for an app on each cache backend and a fresh SQLite database."""
    redis_url = None
    if request.param == "redis":
        request.getfixturevalue("redis_client")
        redis_url = request.getfixturevalue("redis_url")
    return Settings(redis_url=redis_url, database_url=f"sqlite:///{sqlite_path}", cache_timeout_ms=1000)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client
