"""A typed, async cache library on Redis or memory. It knows nothing about the application using it."""

from app.cache.backend import CacheBackend, CacheBackendError, Entry
from app.cache.breaker import BreakerState, CircuitBreakerBackend
from app.cache.coalesce import CoalescingBackend
from app.cache.invalidation import InvalidationBus
from app.cache.manager import CacheHealth, CacheManager, CacheSpec
from app.cache.memory import MemoryBackend
from app.cache.near import NearCache
from app.cache.null import NullBackend
from app.cache.redis import RedisBackend
from app.cache.signing import EntrySigner
from app.cache.stats import CacheStats
from app.cache.typed import Cache

__all__ = (
    "BreakerState",
    "Cache",
    "CacheBackend",
    "CacheBackendError",
    "CacheHealth",
    "CacheManager",
    "CacheSpec",
    "CacheStats",
    "CircuitBreakerBackend",
    "CoalescingBackend",
    "Entry",
    "EntrySigner",
    "InvalidationBus",
    "MemoryBackend",
    "NearCache",
    "NullBackend",
    "RedisBackend",
)
