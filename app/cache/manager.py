"""`CacheManager`: owns one backend and the typed caches declared on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from app.cache.backend import CacheBackendError
from app.cache.breaker import CircuitBreakerBackend
from app.cache.coalesce import CoalescingBackend
from app.cache.near import NearCache
from app.cache.nodes import NodeHealth, ReportsNodes
from app.cache.typed import Cache

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.cache.backend import CacheBackend
    from app.cache.invalidation import InvalidationBus
    from app.cache.signing import EntrySigner
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
    stale_ttl: float | None = None
    """Seconds past `ttl` an entry may be served while one caller refreshes it (stale-while-revalidate);
    `None` takes the manager's default, 0 disables."""
    early_refresh: float | None = None
    """Probabilistic early refresh strength (0 off, 1 typical); `None` takes the manager's default."""
    near: bool = False
    """Put an in-process near cache (L1) in front of the backend, when the manager has one configured."""


class CacheHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What `CacheManager.health()` reports."""

    backend: str
    status: str
    """`ok`, or `degraded` when the backend does not answer (requests then go to the database)."""
    breaker: str
    error: str | None = None
    masters: list[NodeHealth] | None = None
    """Each master on its own (a cluster's, or the one the sentinels name now), when the backend is Redis."""
    invalidations: str | None = None
    """The near-cache invalidation listener: `subscribed`, `retrying`, `starting` or `stopped`; `None` without one."""


class CacheManager:
    """Owns a backend and the typed caches built on it; built and closed by the application lifespan."""

    __slots__ = (
        "_caches",
        "backend",
        "bus",
        "clock",
        "default_early_refresh",
        "default_negative_ttl",
        "default_stale_ttl",
        "default_ttl",
        "jitter",
        "near_max_entries",
        "near_ttl",
        "prefix",
        "signer",
    )

    def __init__(
        self,
        backend: CacheBackend,
        *,
        prefix: str = "cache",
        default_ttl: float = 300.0,
        default_negative_ttl: float = 30.0,
        jitter: float = 0.1,
        default_stale_ttl: float = 0.0,
        default_early_refresh: float = 0.0,
        bus: InvalidationBus | None = None,
        near_ttl: float = 5.0,
        near_max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
        signer: EntrySigner | None = None,
    ) -> None:
        """Take ownership of `backend` and `bus` (they are closed by `close()`).

        Args:
            backend: The backend every cache of this manager uses, usually a `CircuitBreakerBackend`.
            prefix: Prepended to every key, to share one Redis between applications.
            default_ttl: Seconds, for specs that set none.
            default_negative_ttl: Seconds, for specs that set none.
            jitter: TTL jitter fraction for every cache.
            default_stale_ttl: Stale-while-revalidate window, for specs that set none.
            default_early_refresh: Early refresh strength, for specs that set none.
            bus: Cross-process invalidation; specs with `near=True` get a near cache only when there is one.
            near_ttl: Seconds a near-cache entry lives at most.
            near_max_entries: Size bound of each near cache.
            clock: Wall-clock seconds for soft TTLs; tests inject their own.
            signer: Sign every cache's entries (`CACHE_SIGNING_KEY`); `None` stores them unsigned.
        """
        self.backend = backend
        self.prefix = prefix
        self.default_ttl = default_ttl
        self.default_negative_ttl = default_negative_ttl
        self.jitter = jitter
        self.default_stale_ttl = default_stale_ttl
        self.default_early_refresh = default_early_refresh
        self.bus = bus
        self.near_ttl = near_ttl
        self.near_max_entries = near_max_entries
        self.clock = clock
        self.signer = signer
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
        near = None
        if spec.near and self.bus is not None:
            near = NearCache(max_entries=self.near_max_entries, ttl=self.near_ttl)
            self.bus.attach(near)
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
            stale_ttl=self.default_stale_ttl if spec.stale_ttl is None else spec.stale_ttl,
            early_refresh=self.default_early_refresh if spec.early_refresh is None else spec.early_refresh,
            near=near,
            bus=self.bus,
            clock=self.clock,
            signer=self.signer,
        )
        self._caches[spec.namespace] = (spec, cache)
        return cache

    def stats(self) -> dict[str, CacheStats]:
        """Counters of every cache built so far, by namespace."""
        return {namespace: cache.stats for namespace, (_, cache) in self._caches.items()}

    @property
    def breaker(self) -> CircuitBreakerBackend | None:
        """The circuit breaker around the backend, if there is one."""
        backend = self.backend
        if isinstance(backend, CoalescingBackend):
            backend = backend.inner
        return backend if isinstance(backend, CircuitBreakerBackend) else None

    async def health(self) -> CacheHealth:
        """Ping the backend. Never raises: a dead backend is reported as degraded."""
        error = None
        try:
            await self.backend.ping()
        except CacheBackendError as exc:
            error = str(exc)
        breaker = self.breaker
        reporter = _innermost(self.backend)
        return CacheHealth(
            backend=self.backend.name,
            status="ok" if error is None else "degraded",
            breaker=breaker.state.value if breaker else "none",
            error=error,
            masters=await reporter.nodes_health() if isinstance(reporter, ReportsNodes) else None,
            invalidations=self.bus.state if self.bus is not None else None,
        )

    def start(self) -> None:
        """Start background work (the invalidation listener). Called by the lifespan."""
        if self.bus is not None:
            self.bus.start()

    async def close(self) -> None:
        """Stop background work and close the backend. Idempotent."""
        if self.bus is not None:
            await self.bus.close()
        for _, cache in self._caches.values():
            await cache.drain()
        await self.backend.close()


def _innermost(backend: CacheBackend) -> CacheBackend:
    """The backend under every wrapper (breaker, coalescing, test doubles: anything with an `inner`)."""
    inner: object = backend
    while (next_inner := getattr(inner, "inner", None)) is not None:
        inner = next_inner
    return cast("CacheBackend", inner)
