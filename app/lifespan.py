"""Open and close everything that holds a connection: the cache backend, the manager, the database."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from app.cache import (
    CacheManager,
    CircuitBreakerBackend,
    CoalescingBackend,
    EntrySigner,
    InvalidationBus,
    MemoryBackend,
    NullBackend,
    RedisBackend,
)
from app.users.caches import UserCaches
from app.users.postgres import PostgresUserRepository
from app.users.service import UserService
from app.users.sqlite import SQLiteUserRepository

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from litestar import Litestar

    from app.cache import CacheBackend
    from app.config import Settings
    from app.users.repository import UserRepository

__all__ = ("build_cache_manager", "lifespan", "open_repository")

logger = logging.getLogger("app")


def build_cache_manager(settings: Settings, backend: CacheBackend | None = None) -> CacheManager:
    """Build the cache manager from settings. Nothing connects until the first cache call.

    Args:
        settings: The application settings.
        backend: Use this backend instead of the one the settings describe (tests inject faulty ones).
    """
    bus = None
    if backend is None:
        if not settings.cache_enabled:
            backend = NullBackend()
        elif settings.redis_url is None:
            backend = MemoryBackend(max_entries=settings.cache_max_entries)
        else:
            redis = RedisBackend.from_url(settings.redis_url, cluster=settings.redis_cluster)
            backend = CircuitBreakerBackend(redis, timeout=settings.cache_timeout_ms / 1000)
            if settings.cache_coalesce:
                backend = CoalescingBackend(backend)
            if settings.cache_near_enabled:
                bus = InvalidationBus(redis.client, f"{settings.cache_prefix}:invalidations")
    return CacheManager(
        backend,
        prefix=settings.cache_prefix,
        default_ttl=settings.cache_ttl_seconds,
        default_negative_ttl=settings.cache_negative_ttl_seconds,
        default_stale_ttl=settings.cache_stale_ttl_seconds,
        default_early_refresh=settings.cache_early_refresh,
        bus=bus,
        near_ttl=settings.cache_near_ttl_seconds,
        near_max_entries=settings.cache_near_max_entries,
        signer=EntrySigner.from_setting(settings.cache_signing_key) if settings.cache_signing_key else None,
    )


async def open_repository(settings: Settings) -> UserRepository:
    """Open the user repository the settings describe, migrated and (optionally) seeded."""
    path = settings.sqlite_path
    if path is None:
        assert settings.database_url is not None  # noqa: S101 - sqlite_path is None only for other URLs
        return await PostgresUserRepository.open(settings.database_url, seed=settings.seed_sample_users)
    return await SQLiteUserRepository.open(path, seed=settings.seed_sample_users)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None]:
    """Create the cache manager, the repository and the service over them (on `app.state`); close in reverse order."""
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        manager = build_cache_manager(settings, app.state.get("cache_backend"))
        stack.push_async_callback(manager.close)
        manager.start()
        repository = await open_repository(settings)
        stack.push_async_callback(repository.close)
        caches = UserCaches.of(manager)
        app.state.cache_manager = manager
        app.state.user_caches = caches
        app.state.user_repository = repository
        app.state.user_service = UserService(
            repository=repository, user_by_id=caches.by_id, id_by_uuid=caches.id_by_uuid, uuid_by_id=caches.uuid_by_id
        )
        health = await manager.health()
        if health.status != "ok":
            logger.warning(
                "cache backend %s does not answer yet (%s); serving from the database", health.backend, health.error
            )
        logger.info("ready: %s", settings.describe())
        yield
