"""`CacheManager`: owns one backend and the typed caches declared on it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from app.cache.backend import CacheBackendError
from app.cache.breaker import CircuitBreakerBackend, ReportsBreaker
from app.cache.coalesce import CoalescingBackend
from app.cache.fence import CacheFence
from app.cache.memory import MemoryBackend
from app.cache.near import NearCache
from app.cache.nodes import NodeHealth, ReportsNodes
from app.cache.null import NullBackend
from app.cache.policy import CachePolicy
from app.cache.signing import EntrySigner
from app.cache.typed import Cache

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis, RedisCluster

    from app.cache.backend import CacheBackend
    from app.cache.config import CacheConfig
    from app.cache.invalidation import InvalidationBus
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
    policy: Mapping[str, float] = field(default_factory=dict[str, float])
    """Fields of the manager's `CachePolicy` this cache overrides, e.g. `{"ttl": 60.0, "stale_ttl": 0.0}`."""
    version_of: Callable[[V], int] | None = None
    key_encoder: Callable[[K], str] | None = None
    near: bool = False
    """Put an in-process near cache (L1) in front of the backend, when the manager has one configured."""
    name: str | None = None
    """The name a handler asks for this cache by (`CachePlugin`); default: the namespace, `-` and `.` as `_`."""

    def __post_init__(self) -> None:
        """Refuse overrides of fields `CachePolicy` does not have.

        Raises:
            ValueError: An unknown field in `policy`.
        """
        if unknown := self.policy.keys() - set(CachePolicy.__struct_fields__):
            raise ValueError(f"cache {self.namespace!r}: CachePolicy has no field {sorted(unknown)}")

    @property
    def dependency(self) -> str:
        """The name of this cache's dependency: `name`, or the namespace with `-` and `.` as `_`."""
        return self.name or self.namespace.replace("-", "_").replace(".", "_")

    def policy_over(self, default: CachePolicy) -> CachePolicy:
        """`default` with this spec's overrides."""
        return msgspec.structs.replace(default, **self.policy) if self.policy else default


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
        "fence",
        "near_max_bytes",
        "near_max_entries",
        "near_ttl",
        "policy",
        "prefix",
        "signer",
    )

    def __init__(
        self,
        backend: CacheBackend,
        *,
        prefix: str = "cache",
        policy: CachePolicy | None = None,
        bus: InvalidationBus | None = None,
        near_ttl: float = 5.0,
        near_max_entries: int = 10_000,
        near_max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        signer: EntrySigner | None = None,
        fence: CacheFence | None = None,
    ) -> None:
        """Take ownership of `backend`, `bus` and `fence` (they are closed by `close()`).

        Args:
            backend: The backend every cache of this manager uses, usually a `CircuitBreakerBackend`.
            prefix: Prepended to every key, to share one Redis between applications.
            policy: The default lifetimes; each spec overrides what it names. Default `CachePolicy()`.
            bus: Cross-process invalidation; specs with `near=True` get a near cache only when there is one.
            near_ttl: Seconds a near-cache entry lives at most without a `fence`; with one, entries live until
                invalidated or evicted, at most their cache's `ttl` (`app.cache.near`, docs/consistency.md).
            near_max_entries: Entries each near cache holds at most.
            near_max_bytes: Bytes (estimated) each near cache holds at most.
            clock: Wall-clock seconds for soft TTLs; tests inject their own.
            signer: Sign every cache's entries (`CACHE_SIGNING_KEY`); `None` stores them unsigned.
            fence: The consistency fence every cache (and near cache) of this manager obeys (`app.cache.fence`).
        """
        self.backend = backend
        self.prefix = prefix
        self.policy = CachePolicy() if policy is None else policy
        self.bus = bus
        self.near_ttl = near_ttl
        self.near_max_entries = near_max_entries
        self.near_max_bytes = near_max_bytes
        self.clock = clock
        self.signer = signer
        self.fence = fence
        self._caches: dict[str, tuple[CacheSpec[Any, Any], Cache[Any, Any]]] = {}

    @classmethod
    def from_config(cls, config: CacheConfig, backend: CacheBackend | None = None) -> CacheManager:
        """Build a manager and its backend from `config`. Nothing connects until the first cache call.

        Without a URL the backend is the memory backend (a `NullBackend` when `enabled` is off); with one, Redis
        (imported only then) behind the circuit breaker and, with `coalesce`, request coalescing; with `near`,
        an invalidation bus on the same client. With `consistency_bound`, a `CacheFence` every cache obeys,
        revoked whenever the Redis read connection reconnects (on a cluster, withheld per master: only the keys of a
        master whose connection opened); it has no outbox until the application sets its `reader`.

        Args:
            config: Where the cache lives and how it behaves.
            backend: Use this backend instead of the one `config` describes (tests inject faulty ones).
        """
        bus = None
        fence = None
        if config.enabled and config.consistency_bound > 0:
            fence = CacheFence(bound=config.consistency_bound, retention=config.consistency_retention)
        if backend is None:
            if not config.enabled:
                backend = NullBackend()
            elif config.url is None:
                backend = MemoryBackend(max_entries=config.memory_max_entries)
            else:
                from app.cache.cluster import ClusterBackend  # noqa: PLC0415 - redis-py only when configured
                from app.cache.invalidation import InvalidationBus  # noqa: PLC0415
                from app.cache.redis import RedisBackend  # noqa: PLC0415

                client: Redis | RedisCluster
                if config.cluster:
                    # A breaker per master inside: a dead master costs only its own keys.
                    cluster = ClusterBackend.from_url(config.url, timeout=config.timeout)
                    backend, client = cluster, cluster.client
                    if fence is not None:
                        # Trust per master: a master's new connection withholds only its own keys' replies.
                        cluster.on_node_connect = fence.withhold
                        fence.locate = cluster.owner
                        fence.probe = cluster.open_connections
                else:
                    redis = RedisBackend.from_url(config.url, sentinel_password=config.sentinel_password)
                    backend, client = CircuitBreakerBackend(redis, timeout=config.timeout), redis.client
                    reads = redis.reads
                    if fence is not None and reads is not None:
                        reads.on_connect = fence.revoke
                        fence.probe = lambda: reads.execute("PING")
                if config.coalesce:
                    backend = CoalescingBackend(backend)
                if config.near:
                    # With a fence, a hung subscription is noticed within δ.
                    ping = 1.0 if fence is None else min(1.0, fence.bound / 4)
                    bus = InvalidationBus(client, f"{config.prefix}:invalidations", ping_interval=ping)
        return cls(
            backend,
            prefix=config.prefix,
            policy=config.policy,
            bus=bus,
            near_ttl=config.near_ttl,
            near_max_entries=config.near_max_entries,
            near_max_bytes=config.near_max_bytes,
            signer=EntrySigner([key.encode() for key in config.signing_keys]) if config.signing_keys else None,
            fence=fence,
        )

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
        policy = spec.policy_over(self.policy)
        near = None
        if spec.near and self.bus is not None:
            near = NearCache(
                max_entries=self.near_max_entries,
                max_bytes=self.near_max_bytes,
                # With the fence, invalidation alone keeps entries correct (docs/consistency.md §6).
                ttl=self.near_ttl if self.fence is None else policy.ttl,
            )
            self.bus.attach(near)
        cache = Cache(
            self.backend,
            namespace=spec.namespace,
            key_type=spec.key_type,
            value_type=spec.value_type,
            policy=policy,
            prefix=self.prefix,
            key_encoder=spec.key_encoder,
            version_of=spec.version_of,
            near=near,
            bus=self.bus,
            clock=self.clock,
            signer=self.signer,
            fence=self.fence,
        )
        if self.fence is not None:
            self.fence.attach(cache, near)
        self._caches[spec.namespace] = (spec, cache)
        return cache

    def stats(self) -> dict[str, CacheStats]:
        """Counters of every cache built so far, by namespace."""
        return {namespace: cache.stats for namespace, (_, cache) in self._caches.items()}

    @property
    def breaker(self) -> ReportsBreaker | None:
        """The circuit breaker around the backend (on a cluster, the masters' breakers), if there is one."""
        backend = self.backend
        if isinstance(backend, CoalescingBackend):
            backend = backend.inner
        return backend if isinstance(backend, ReportsBreaker) else None

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
        if self.fence is not None:
            self.fence.start()

    async def close(self) -> None:
        """Stop background work and close the backend. Idempotent."""
        if self.fence is not None:
            await self.fence.close()
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
