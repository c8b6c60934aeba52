"""A typed, async cache library on Redis or memory. It knows nothing about the application using it.

The package imports nothing from the rest of `app` (it could be published on its own) and ships a `py.typed`
marker. redis-py and hiredis are needed only by the Redis parts: `RedisBackend`, `ClusterBackend` and
`InvalidationBus` are imported on first access, so the memory backend, `Cache` and `CacheManager` work without
them installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from app.cache.backend import CacheBackend, CacheBackendError, Entry
from app.cache.breaker import BreakerState, CircuitBreakerBackend
from app.cache.coalesce import CoalescingBackend
from app.cache.fence import CacheFence, OutboxReader
from app.cache.manager import CacheHealth, CacheManager, CacheSpec
from app.cache.memory import MemoryBackend
from app.cache.near import NearCache
from app.cache.null import NullBackend
from app.cache.policy import CachePolicy
from app.cache.signing import EntrySigner
from app.cache.stats import CacheStats
from app.cache.typed import Cache

if TYPE_CHECKING:
    from app.cache.cluster import ClusterBackend
    from app.cache.invalidation import InvalidationBus
    from app.cache.redis import RedisBackend

__all__ = (
    "BreakerState",
    "Cache",
    "CacheBackend",
    "CacheBackendError",
    "CacheFence",
    "CacheHealth",
    "CacheManager",
    "CachePolicy",
    "CacheSpec",
    "CacheStats",
    "CircuitBreakerBackend",
    "ClusterBackend",
    "CoalescingBackend",
    "Entry",
    "EntrySigner",
    "InvalidationBus",
    "MemoryBackend",
    "NearCache",
    "NullBackend",
    "OutboxReader",
    "RedisBackend",
)

_NEEDS_REDIS = {
    "ClusterBackend": "app.cache.cluster",
    "InvalidationBus": "app.cache.invalidation",
    "RedisBackend": "app.cache.redis",
}
"""Exports whose modules import redis-py, by the module that defines them."""


def __getattr__(name: str) -> Any:
    module = _NEEDS_REDIS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
