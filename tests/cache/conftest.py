"""Fixtures of the cache tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from app.cache import CacheBackend, CircuitBreakerBackend, MemoryBackend, RedisBackend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    """An empty memory backend, then an empty standalone Redis: the two compare-and-sets (Python and Lua)."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    request.getfixturevalue("redis_client")  # flushes the database
    backend = CircuitBreakerBackend(RedisBackend.from_url(request.getfixturevalue("redis_url")), timeout=1.0)
    try:
        yield backend
    finally:
        await backend.close()
