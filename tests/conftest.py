from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.cache import CacheBackend, CircuitBreakerBackend, ClusterBackend, MemoryBackend, RedisBackend
from app.config import Settings
from app.server import create_app
from tests.servers import (
    HOW_TO_PROVIDE_POSTGRES,
    HOW_TO_PROVIDE_POSTGRES_LONG,
    HOW_TO_PROVIDE_REDIS,
    PostgresServer,
    RedisClusterServer,
    RedisServer,
    SentinelServer,
    TLSRedisServer,
    docker_available,
    postgres_bindir,
)


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
    if not docker_available():
        if "REDIS_URL" not in os.environ:
            pytest.fail(HOW_TO_PROVIDE_REDIS)
        yield os.environ["REDIS_URL"]
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


def _need_redis_server() -> None:
    if not shutil.which("redis-server"):
        pytest.fail(HOW_TO_PROVIDE_REDIS + " Cluster, Sentinel and TLS tests need the redis-server binary.")


_Server = TypeVar("_Server", RedisClusterServer, SentinelServer)


def _started(kind: type[_Server]) -> Iterator[_Server]:
    """Start a server of `kind` from the local `redis-server` binary for a fixture, and close it after."""
    _need_redis_server()
    server = kind().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisClusterServer]:
    """A 6-node Redis Cluster shared by the run (tests that fail a node start their own)."""
    yield from _started(RedisClusterServer)


@pytest.fixture
def cluster_server() -> Iterator[RedisClusterServer]:
    """A cluster of the test's own, which it may fail (fault injection)."""
    yield from _started(RedisClusterServer)


@pytest.fixture
def redis_cluster_url(redis_cluster_server: RedisClusterServer) -> str:
    """The shared cluster, every master flushed."""
    for node in redis_cluster_server.masters():
        with redis.Redis(port=node.port) as client:
            client.flushall()
    return redis_cluster_server.url


@pytest.fixture(scope="session")
def redis_sentinel_server() -> Iterator[SentinelServer]:
    """A Sentinel setup (1 master, 1 replica, 3 sentinels) shared by the run (fault tests start their own)."""
    yield from _started(SentinelServer)


@pytest.fixture
def sentinel_server() -> Iterator[SentinelServer]:
    """A Sentinel setup of the test's own, whose master it may fail (fault injection)."""
    yield from _started(SentinelServer)


@pytest.fixture
def redis_sentinel_url(redis_sentinel_server: SentinelServer) -> str:
    """The shared Sentinel setup's URL, its master flushed."""
    port = redis_sentinel_server.current_master_port()
    assert port is not None
    with redis.Redis(port=port) as client:
        client.flushall()
    return redis_sentinel_server.url


@pytest.fixture(scope="session")
def redis_tls_server() -> Iterator[TLSRedisServer]:
    """A TLS-only redis-server whose certificate a CA made for this run signed."""
    _need_redis_server()
    server = TLSRedisServer().start()
    try:
        yield server
    finally:
        server.close()


def _redis_backend_url(request: pytest.FixtureRequest, kind: str) -> tuple[str, bool]:
    """The URL of a flushed server of `kind` (redis, cluster, sentinel) and whether it is a cluster."""
    if kind == "cluster":
        return request.getfixturevalue("redis_cluster_url"), True
    if kind == "sentinel":
        return request.getfixturevalue("redis_sentinel_url"), False
    request.getfixturevalue("redis_client")  # flushes the database
    return request.getfixturevalue("redis_url"), False


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    """Each backend in turn, empty: memory, and Redis standalone, Cluster and Sentinel."""
    if request.param == "memory":
        yield MemoryBackend(max_entries=10_000)
        return
    url, cluster = _redis_backend_url(request, request.param)
    inner = ClusterBackend.from_url(url, timeout=1.0) if cluster else RedisBackend.from_url(url)
    backend = CircuitBreakerBackend(inner, timeout=1.0)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "users.db")


@pytest.fixture(params=["memory-sqlite", "redis-sqlite", "redis-postgres", "cluster-sqlite", "sentinel-sqlite"])
def settings(request: pytest.FixtureRequest, sqlite_path: str) -> Settings:
    """Settings for an app on each cache backend (memory, Redis standalone, Cluster, Sentinel) and database."""
    cache, database = request.param.split("-")
    redis_url = None
    cluster = False
    if cache != "memory":
        redis_url, cluster = _redis_backend_url(request, cache)
    database_url = f"sqlite:///{sqlite_path}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    return Settings(redis_url=redis_url, redis_cluster=cluster, database_url=database_url, cache_timeout_ms=1000)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


CONVENTIONAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


_postgres_missing: list[bool] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    """Say once, in full, how to provide PostgreSQL, as the very last line: the short summary cuts long lines."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if _postgres_missing and reporter is not None:
        reporter.write_line(HOW_TO_PROVIDE_POSTGRES_LONG, red=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL with the right to create databases.

    In order: TEST_DATABASE_URL; a throw-away server from the PostgreSQL binaries on this machine; the server on
    127.0.0.1:5432 as user `postgres`; testcontainers when a Docker engine answers. Else the tests fail, with one
    short line.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if postgres_bindir() is not None:
        server = PostgresServer.create()
        try:
            yield server.start().url
        finally:
            server.close()
        return
    if asyncio.run(_answers(CONVENTIONAL_POSTGRES_URL)):
        yield CONVENTIONAL_POSTGRES_URL
        return
    if not docker_available():
        _postgres_missing.append(True)
        pytest.fail(HOW_TO_PROVIDE_POSTGRES)
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver=None) as container:
        yield container.get_connection_url()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL of the test's own, which it may stop, restart and hang (fault injection)."""
    if postgres_bindir() is None:
        _postgres_missing.append(True)
        pytest.fail(HOW_TO_PROVIDE_POSTGRES + " (fault tests need its binaries)")
    server = PostgresServer.create()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A database of this test run's own, dropped at the end."""
    name = f"tcs_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    parts = urlsplit(postgres_server_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def postgres_url(postgres_database: str) -> str:
    """The run's database, emptied of every domain's tables: the next app to open it migrates and seeds it afresh."""
    await _admin(postgres_database, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, sqlite_path: str) -> str:
    """Each database in turn, fresh."""
    if request.param == "sqlite":
        return f"sqlite:///{sqlite_path}"
    return request.getfixturevalue("postgres_url")
