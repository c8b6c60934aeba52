"""TLS is verified on every connection (pool and multiplexed reads), with a CA made for the test."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from litestar.testing import AsyncTestClient

from app.cache import CacheBackendError, Entry, RedisBackend
from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.servers import TLSRedisServer


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA that did not sign the server's certificate."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


async def test_a_verified_connection_reads_and_writes(redis_tls_server: TLSRedisServer) -> None:
    backend = RedisBackend.from_url(redis_tls_server.url())
    try:
        assert backend._reads is not None
        assert backend._reads._ssl is not None
        await backend.set_many([Entry("tls:a", b"1", 10_000)])
        assert await backend.get_many(["tls:a", "tls:missing"]) == [b"1", None]
        await backend.ping()
    finally:
        await backend.close()


async def test_a_certificate_from_another_ca_is_refused_on_every_path(
    redis_tls_server: TLSRedisServer, other_ca: Path
) -> None:
    backend = RedisBackend.from_url(redis_tls_server.url(other_ca))
    try:
        with pytest.raises(CacheBackendError, match=r"(?i)certificate verify failed"):
            await backend.get_many(["tls:a"])  # the multiplexed connection
        with pytest.raises(CacheBackendError, match=r"(?i)certificate verify failed"):
            await backend.set_many([Entry("tls:a", b"1", 10_000)])  # the pool
        with pytest.raises(CacheBackendError, match=r"(?i)certificate verify failed"):
            await backend.ping()
    finally:
        await backend.close()


async def test_cert_reqs_none_skips_verification(redis_tls_server: TLSRedisServer, other_ca: Path) -> None:
    backend = RedisBackend.from_url(redis_tls_server.url(other_ca, cert_reqs="none"))
    try:
        await backend.set_many([Entry("tls:b", b"2", 10_000)])
        assert await backend.get_many(["tls:b"]) == [b"2"]
    finally:
        await backend.close()


@pytest.mark.parametrize("bound_ms", [0, 1000], ids=["no-fence", "fence"])
async def test_a_refused_certificate_degrades_to_the_database(
    redis_tls_server: TLSRedisServer, other_ca: Path, sqlite_path: str, bound_ms: int
) -> None:
    settings = Settings(
        redis_url=redis_tls_server.url(other_ca),
        database_url=f"sqlite:///{sqlite_path}",
        cache_consistency_bound_ms=bound_ms,
    )
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        for _ in range(3):
            response = await client.get("/users/1")
            assert response.status_code == 200
            assert response.json()["id"] == 1
        manager = app.state.cache_manager
        if bound_ms:
            # The fence's probe meets the refused certificate first: the caches are never trusted, never read.
            assert manager.fence.failures > 0
            assert not manager.fence.trusted()
        else:
            assert manager.cache(USER_BY_ID).stats.errors > 0
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["cache"]["status"] == "degraded"


async def test_the_app_uses_a_verified_tls_server(redis_tls_server: TLSRedisServer, sqlite_path: str) -> None:
    settings = Settings(redis_url=redis_tls_server.url(), database_url=f"sqlite:///{sqlite_path}")
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        first = (await client.get("/users/2")).json()
        stats = app.state.cache_manager.cache(USER_BY_ID).stats
        hits = stats.hits
        assert (await client.get("/users/2")).json() == first
        assert stats.hits == hits + 1
        assert stats.errors == 0
