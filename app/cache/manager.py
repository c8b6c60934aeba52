"""`CacheManager`: owns one backend and the typed caches declared on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from app.cache.backend import CacheBackendError
from app.cache.breaker import CircuitBreakerBackend
from app.cache.typed import Cache

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.cache.backend import CacheBackend
    from app.cache.stats import CacheStats

__all__ = ("CacheHealth", "CacheManager", "CacheSpec")

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSpec(Generic[K, V]):
    """The declaration of a typed cache: what it maps, and how long entries live.

    A spec holds no connection, so it can live at module level; `CacheManager.cache(spec)` turns it into
    the `Cache[K, V]` bound to the manager's backend.
    """

    namespace: str
    key_type: type[K]
    value_type: type[V]
    ttl: float | None = None
    """Seconds; `None` takes the manager's default."""
    negative_ttl: float | None = None
    """Seconds an "absent" entry lives; `None` takes the manager's default, 0 disables."""
    version_of: Callable[[V], int] | None = None
    key_encoder: Callable[[K], str] | None = None


class CacheHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What `CacheManager.health()` reports."""

    backend: str
    status: str
    """`ok`, or `degraded` when the backend does not answer (requests then go to the database)."""
    breaker: str
    error: str | None = None


class CacheManager:
    """Owns a backend and the typed caches built on it; built and closed by the application lifespan."""

    __slots__ = ("_caches", "backend", "default_negative_ttl", "default_ttl", "jitter", "prefix")

    def __init__(
        self,
        backend: CacheBackend,
        *,
        prefix: str = "cache",
        default_ttl: float = 300.0,
        default_negative_ttl: float = 30.0,
        jitter: float = 0.1,
    ) -> None:
        """Take ownership of `backend` (it is closed by `close()`).

        Args:
            backend: The backend every cache of this manager uses, usually a `CircuitBreakerBackend`.
            prefix: Prepended to every key, to share one Redis between applications.
            default_ttl: Seconds, for specs that set none.
            default_negative_ttl: Seconds, for specs that set none.
            jitter: TTL jitter fraction for every cache.
        """
        self.backend = backend
        self.prefix = prefix
        self.default_ttl = default_ttl
        self.default_negative_ttl = default_negative_ttl
        self.jitter = jitter
        self._caches: dict[str, tuple[CacheSpec[Any, Any], Cache[Any, Any]]] = {}

    def cache(self, spec: CacheSpec[K, V]) -> Cache[K, V]:
        """Return the cache for `spec`, building it on first use.

        Raises:
            ValueError: Another spec already uses this namespace.
        """
        known = self._caches.get(spec.namespace)
        if known is not None:
            if known[0] is not spec and known[0] != spec:
                raise ValueError(f"cache namespace {spec.namespace!r} is declared twice")
            return cast("Cache[K, V]", known[1])
        cache = Cache(
            self.backend,
            namespace=spec.namespace,
            key_type=spec.key_type,
            value_type=spec.value_type,
            ttl=spec.ttl or self.default_ttl,
            negative_ttl=self.default_negative_ttl if spec.negative_ttl is None else spec.negative_ttl,
            jitter=self.jitter,
            prefix=self.prefix,
            key_encoder=spec.key_encoder,
            version_of=spec.version_of,
        )
        self._caches[spec.namespace] = (spec, cache)
        return cache

    def stats(self) -> dict[str, CacheStats]:
        """Counters of every cache built so far, by namespace."""
        return {namespace: cache.stats for namespace, (_, cache) in self._caches.items()}

    async def health(self) -> CacheHealth:
        """Ping the backend. Never raises: a dead backend is reported as degraded."""
        breaker = self.backend.state.value if isinstance(self.backend, CircuitBreakerBackend) else "none"
        try:
            await self.backend.ping()
        except CacheBackendError as exc:
            return CacheHealth(backend=self.backend.name, status="degraded", breaker=breaker, error=str(exc))
        if isinstance(self.backend, CircuitBreakerBackend):
            breaker = self.backend.state.value
        return CacheHealth(backend=self.backend.name, status="ok", breaker=breaker)

    async def close(self) -> None:
        """Close the backend. Idempotent."""
        await self.backend.close()
