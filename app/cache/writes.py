"""The state of a `Cache` and its write path: set, absent entries, deletes, and the fence's markers.

`Cache` (`app.cache.typed`) adds the read path on top. A write drops the keys from this process's near cache,
tells other processes over the bus, and remembers keys whose write failed (`app.cache.dirty`) until repaired.
"""

from __future__ import annotations

import time
from itertools import compress
from typing import TYPE_CHECKING, Generic, TypeVar

from app.cache.backend import FENCE_WRITE, CacheBackendError, CacheBackendResetError
from app.cache.codec import key_encoder_for
from app.cache.dirty import DirtyKeys
from app.cache.entry import EntryFormat
from app.cache.flight import SingleFlight
from app.cache.policy import CachePolicy
from app.cache.stats import CacheStats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from app.cache.backend import CacheBackend
    from app.cache.fence import CacheFence
    from app.cache.invalidation import InvalidationBus
    from app.cache.near import NearCache
    from app.cache.signing import EntrySigner

__all__ = ("CacheWrites",)

K = TypeVar("K")
V = TypeVar("V")

_DEFAULT_POLICY = CachePolicy()


class CacheWrites(Generic[K, V]):
    """A typed cache's state, keys and writes; see `Cache` for the whole contract."""

    __slots__ = (
        "_backend",
        "_bus",
        "_dirty",
        "_encode_key",
        "_fence",
        "_flights",
        "_format",
        "_key_prefix",
        "_near",
        "namespace",
        "policy",
        "stats",
        "version_of",
    )

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str,
        key_type: type[K],
        value_type: type[V],
        policy: CachePolicy = _DEFAULT_POLICY,
        prefix: str = "cache",
        key_encoder: Callable[[K], str] | None = None,
        version_of: Callable[[V], int] | None = None,
        near: NearCache | None = None,
        bus: InvalidationBus | None = None,
        clock: Callable[[], float] = time.time,
        signer: EntrySigner | None = None,
        fence: CacheFence | None = None,
    ) -> None:
        """Create a typed cache. `CacheManager.cache` is the usual way to get one.

        Args:
            backend: Where the bytes live.
            namespace: Distinguishes this cache's keys from other caches' on the same backend.
            key_type: `int`, `str` and `UUID` have built-in key encoders; other types need `key_encoder`.
            value_type: Any type msgspec can encode, usually a frozen Struct.
            policy: TTL, negative TTL, stale TTL, early refresh and jitter.
            prefix: Application-wide key prefix.
            key_encoder: Turns a key into text; defaults by `key_type`.
            version_of: Makes the cache versioned (see the class docstring).
            near: An in-process near cache (L1) in front of the backend; only correct with a `bus`.
            bus: Publishes this cache's writes so other processes drop them from their near caches.
            clock: Wall-clock seconds for soft TTLs (shared between processes); tests inject their own.
            signer: Tag every entry with a keyed MAC and treat an entry whose tag does not verify as undecodable
                (deleted, counted in `decode_errors`, a miss), so whoever can write to Redis but lacks the key
                cannot make the service serve, hide or pin anything.
            fence: The consistency fence: while it is not trusted, reads bypass the cache (`app.cache.fence`).
        """
        self._backend = backend
        self._format = EntryFormat(value_type, policy, clock=clock, signer=signer)
        self._encode_key = key_encoder or key_encoder_for(key_type)
        self._key_prefix = f"{prefix}:{namespace}:{self._format.fingerprint}:"
        self._flights: SingleFlight[K, V] = SingleFlight()
        self._dirty = DirtyKeys()
        self._near = near
        self._bus = bus
        self._fence = fence
        self.namespace = namespace
        self.policy = policy
        self.version_of = version_of
        self.stats = CacheStats()

    def __repr__(self) -> str:
        return f"Cache(namespace={self.namespace!r}, value_type={self._format.value_type!r})"

    def key(self, key: K) -> str:
        """Return the backend key for `key`."""
        return self._key_prefix + self._encode_key(key)

    def key_text(self, key: K) -> str:
        """Return `key` as this cache encodes it (the part of the backend key after the fingerprint)."""
        return self._encode_key(key)

    def _backend_keys(self, keys: Iterable[K]) -> list[str]:
        """`key` of each key, in one comprehension."""
        prefix = self._key_prefix
        encode = self._encode_key
        return [prefix + encode(key) for key in keys]

    async def _write(self, items: Sequence[tuple[K, V | None, int]], ttl: float, *, track: bool = True) -> None:
        """Write entries.

        `track` marks an application write (not a fill from a load): it is remembered if it fails, and it is
        dropped from every near cache.
        """
        pack = self._format.pack
        backend_keys = self._backend_keys([key for key, _, _ in items])
        entries = [pack(bk, value, version, ttl) for bk, (_, value, version) in zip(backend_keys, items, strict=True)]
        if track:
            self._invalidate_near(backend_keys)
        try:
            if self.version_of is None:
                await self._backend.set_many(entries)
                written = None
            else:
                written = await self._backend.set_many_if_newer(entries, [version for _, _, version in items])
                self.stats.stale_writes += written.count(False)
        except CacheBackendError:
            self.stats.errors += 1
            if track:
                self._dirty.mark(zip(backend_keys, [version for _, _, version in items], strict=True), self.policy.ttl)
            return
        if track:
            self._dirty.discard(compress(backend_keys, written) if written is not None else backend_keys)
            await self._publish(backend_keys)

    def _invalidate_near(self, backend_keys: list[str]) -> None:
        if self._near is not None:
            self.stats.near_invalidations += self._near.invalidate(backend_keys)

    async def _publish(self, backend_keys: list[str]) -> None:
        if self._bus is not None and not await self._bus.publish(backend_keys):
            self.stats.errors += 1

    async def _repair_keys(self, keys: list[tuple[str, int]]) -> None:
        """`DirtyKeys.repair`'s fence: like any write, the repair also reaches every near cache.

        A key whose failed write carried a version gets a fence marker of that version (a miss that refuses
        older values: a load that read the old row before the write cannot fill it after the repair).
        """
        await self._fence_keys(keys)
        await self._publish([key for key, _ in keys])

    async def _fence_keys(self, keys: Sequence[tuple[str, int]], *, tombstones: bool = False) -> None:
        """Drop `(backend key, version)` from the near cache; in the backend, replace older versions by markers.

        With a consistency fence, a part that failed on connections the backend reset (`CacheBackendResetError`)
        counts as applied: what they hold is read again only after a reconnect, which revokes the fence's trust.

        Raises:
            CacheBackendError: The backend did not take them.
        """
        self._invalidate_near([key for key, _ in keys])
        versioned = [(key, version) for key, version in keys if version and self.version_of is not None]
        unversioned = [key for key, version in keys if not version or self.version_of is None]
        token = FENCE_WRITE.set(self._fence is not None)
        try:
            if versioned:
                marker = self._format.marker
                entries = [marker(key, version, present=not tombstones) for key, version in versioned]
                # Compared as `version - 1`: a marker replaces only older versions, never the same version's value
                # (the write-through's), which would cost one more load for nothing.
                try:
                    await self._backend.set_many_if_newer(entries, [version - 1 for _, version in versioned])
                except CacheBackendResetError:
                    self.stats.errors += 1
            if unversioned:
                try:
                    await self._backend.delete_many(unversioned)
                except CacheBackendResetError:
                    self.stats.errors += 1
        finally:
            FENCE_WRITE.reset(token)

    async def apply_invalidations(self, items: Sequence[tuple[str, int, str]]) -> None:
        """Apply outbox rows `(key text, version, kind)` of this cache (`app.cache.fence`); idempotent.

        Loads of those keys under way are detached (later callers do not join a load that may have read the
        database before the write), the keys leave the near cache, and the backend gets a marker of the
        version under each key (a tombstone for a delete) unless it already holds that version or a newer one.

        Raises:
            CacheBackendError: The backend did not take them (the caller retries).
        """
        running = self._flights.running
        if running:
            by_text = {self._encode_key(key): key for key in running}
            self._flights.detach([by_text[text] for text, _, _ in items if text in by_text])
        prefix = self._key_prefix
        deletes = [(prefix + text, version) for text, version, kind in items if kind == "delete"]
        others = [(prefix + text, version) for text, version, kind in items if kind != "delete"]
        if deletes:
            await self._fence_keys(deletes, tombstones=True)
        if others:
            await self._fence_keys(others)

    def _versioned(self, items: Iterable[tuple[K, V]]) -> list[tuple[K, V | None, int]]:
        version_of = self.version_of
        return [(key, value, version_of(value) if version_of else 0) for key, value in items]

    async def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store a value (in a versioned cache: unless a newer version is cached)."""
        await self.set_many({key: value}, ttl)

    async def set_many(self, items: Mapping[K, V], ttl: float | None = None) -> None:
        """Store several values in one pipelined round trip."""
        self._flights.detach(items)
        await self._write(self._versioned(items.items()), ttl or self.policy.ttl)

    async def fill_many(self, items: Mapping[K, V]) -> None:
        """Cache values just read from the source of truth, as a load does (a warm-up).

        Like a load's fill: versioned (never over a newer cached version), not published to other processes and
        not remembered if it fails; skipped while the consistency fence is not trusted.
        """
        if items and (self._fence is None or self._fence.trusted()):
            await self._write(self._versioned(items.items()), self.policy.ttl, track=False)

    async def set_absent(self, key: K, version: int = 0, ttl: float | None = None) -> None:
        """Cache that `key` has no value, for `ttl` (default `negative_ttl`) seconds.

        In a versioned cache, `version` makes this a tombstone: older values cannot replace it while it lives.
        """
        self._flights.detach((key,))
        ttl = ttl or self.policy.negative_ttl
        if ttl > 0:
            await self._write([(key, None, version)], ttl)

    async def _delete_backend_keys(self, backend_keys: list[str]) -> None:
        self._invalidate_near(backend_keys)
        try:
            await self._backend.delete_many(backend_keys)
        except CacheBackendError:
            self.stats.errors += 1
            self._dirty.mark([(backend_key, 0) for backend_key in backend_keys], self.policy.ttl)
            return
        self._dirty.discard(backend_keys)
        await self._publish(backend_keys)

    async def delete(self, key: K) -> None:
        """Remove a key (and any "absent" entry for it)."""
        await self.delete_many((key,))

    async def delete_many(self, keys: Iterable[K]) -> None:
        """Remove several keys in one round trip."""
        keys = list(keys)
        self._flights.detach(keys)
        await self._delete_backend_keys(self._backend_keys(keys))
