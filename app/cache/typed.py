"""`Cache[K, V]`: a typed view of a backend, with batching, negative entries and single-flight loads."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from app.cache.backend import CacheBackendError, Entry, entry_header
from app.cache.codec import ValueCodec, key_encoder_for
from app.cache.signing import SIGNED_LAYOUT
from app.cache.stats import CacheStats

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from app.cache.backend import CacheBackend
    from app.cache.fence import CacheFence
    from app.cache.invalidation import InvalidationBus
    from app.cache.near import NearCache
    from app.cache.signing import EntrySigner

__all__ = ("Cache",)

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

_MAX_DIRTY = 10_000
"""Keys remembered after failed writes; beyond this the oldest are forgotten."""

_FENCED = 1
"""`fresh_until_ms` of a fence marker: an "absent" entry that reads as a miss. Its version still makes the
compare-and-set refuse older values, so a load that read the database before a write cannot fill after it."""

_monotonic = time.monotonic


class _Stored(msgspec.Struct, Generic[V], array_like=True):
    """A stored entry as one msgpack array (see `entry_header`): decoded in one call, in C."""

    version: int
    fresh_until_ms: int
    """Epoch milliseconds the entry is fresh until (soft TTL), 0 without a soft TTL."""
    value: V | msgspec.UnsetType = msgspec.UNSET
    """`UNSET` in a cached absence."""


class _Status(Enum):
    HIT = 1
    MISS = 2
    ABSENT = 3
    STALE = 4
    """Past its soft TTL: served, and refreshed in the background."""
    EARLY = 5
    """Fresh, but chosen for an early refresh (served, and refreshed in the background)."""


_SERVED = (_Status.HIT, _Status.STALE, _Status.EARLY)
_REFRESH = (_Status.STALE, _Status.EARLY)
_MISS_RESULT: tuple[_Status, None] = (_Status.MISS, None)
_ABSENT_RESULT: tuple[_Status, None] = (_Status.ABSENT, None)


def _one_by_one(loader: Callable[[K], Awaitable[V | None]]) -> Callable[[list[K]], Awaitable[Mapping[K, V]]]:
    """A batch loader that calls a single-key `loader` (`get_or_load` loads one key at a time)."""

    async def load(keys: list[K]) -> dict[K, V]:
        value = await loader(keys[0])
        return {} if value is None else {keys[0]: value}

    return load


class Cache(Generic[K, V]):
    """Typed get/set/delete over a byte backend.

    Keys are `{prefix}:{namespace}:{fingerprint}:{key}`, where the fingerprint follows V's msgspec schema so
    a deploy that changes V never reads entries written for the old V. A backend failure never reaches the
    caller: reads degrade to misses and writes to no-ops, and `stats.errors` counts them.

    A versioned cache (`version_of` given) stores each value with its version and refuses to replace a
    cached value by an older one, which closes the cache-aside race between a slow reader and a writer.
    """

    __slots__ = (
        "_backend",
        "_bus",
        "_clock",
        "_codec",
        "_dirty",
        "_encode_key",
        "_entry_decoder",
        "_fence",
        "_inflight",
        "_key_prefix",
        "_load_seconds",
        "_near",
        "_refreshing",
        "_signer",
        "_tasks",
        "early_refresh",
        "jitter",
        "namespace",
        "negative_ttl",
        "stale_ttl",
        "stats",
        "ttl",
        "version_of",
    )

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str,
        key_type: type[K],
        value_type: type[V],
        ttl: float,
        negative_ttl: float = 0.0,
        jitter: float = 0.1,
        prefix: str = "cache",
        key_encoder: Callable[[K], str] | None = None,
        version_of: Callable[[V], int] | None = None,
        stale_ttl: float = 0.0,
        early_refresh: float = 0.0,
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
            ttl: Seconds an entry lives.
            negative_ttl: Seconds an "absent" entry lives; 0 disables negative caching.
            jitter: Each TTL is shortened by a random fraction up to this, so entries written together do
                not expire together.
            prefix: Application-wide key prefix.
            key_encoder: Turns a key into text; defaults by `key_type`.
            version_of: Makes the cache versioned (see the class docstring).
            stale_ttl: Stale-while-revalidate: for this many seconds after `ttl`, an entry is still served
                by `get_or_load` / `get_many_or_load` while one caller reloads it in the background.
            early_refresh: Probabilistic early refresh (XFetch) strength, 0 to disable, 1 is typical: as
                an entry nears the end of its TTL, a hit reloads it in the background with rising
                probability, scaled by how long loads take, so hot keys never expire under load.
            near: An in-process near cache (L1) in front of the backend; only correct with a `bus`.
            bus: Publishes this cache's writes so other processes drop them from their near caches.
            clock: Wall-clock seconds for soft TTLs (shared between processes); tests inject their own.
            signer: Tag every entry with a keyed MAC and treat an entry whose tag does not verify as undecodable
                (deleted, counted in `decode_errors`, a miss), so whoever can write to Redis but lacks the key
                cannot make the service serve, hide or pin anything.
            fence: The consistency fence: while it is not trusted, reads bypass the cache (`app.cache.fence`).
        """
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if stale_ttl < 0 or early_refresh < 0:
            raise ValueError("stale_ttl and early_refresh must not be negative")
        self._backend = backend
        self._codec = ValueCodec(value_type, SIGNED_LAYOUT if signer is not None else b"")
        self._signer = signer
        self._entry_decoder: msgspec.msgpack.Decoder[_Stored[V]] = msgspec.msgpack.Decoder(
            cast("Any", _Stored)[value_type]
        )
        self._encode_key = key_encoder or key_encoder_for(key_type)
        self._key_prefix = f"{prefix}:{namespace}:{self._codec.fingerprint}:"
        self._inflight: dict[K, asyncio.Future[V | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty: dict[str, tuple[float, int]] = {}
        """Backend key -> (deadline, version the failed write carried; 0 for a delete)."""
        self._refreshing: set[K] = set()
        self.namespace = namespace
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.jitter = jitter
        self.version_of = version_of
        self.stale_ttl = stale_ttl
        self.early_refresh = early_refresh
        self._near = near
        self._bus = bus
        self._clock = clock
        self._fence = fence
        self._load_seconds = 0.05  # running estimate of one load, for early refresh
        self.stats = CacheStats()

    def __repr__(self) -> str:
        return f"Cache(namespace={self.namespace!r}, value_type={self._codec.value_type!r})"

    def key(self, key: K) -> str:
        """Return the backend key for `key`."""
        return self._key_prefix + self._encode_key(key)

    def key_text(self, key: K) -> str:
        """Return `key` as this cache encodes it (the part of the backend key after the fingerprint)."""
        return self._encode_key(key)

    # -- encoding ---------------------------------------------------------------------------------

    @property
    def _soft(self) -> bool:
        """Whether entries carry a soft expiry (stale-while-revalidate or early refresh)."""
        return self.stale_ttl > 0 or self.early_refresh > 0

    def _jittered(self, ttl: float) -> float:
        if self.jitter:
            ttl *= 1 - self.jitter * random.random()  # noqa: S311 - not security sensitive
        return ttl

    def _entry(self, key: K, value: V | None, version: int, ttl: float) -> Entry:
        ttl = self._jittered(ttl)
        if value is None:
            data = entry_header(version, 0, present=False)
        else:
            fresh_until_ms = 0
            if self._soft:
                fresh_until_ms = int((self._clock() + ttl) * 1000)
                ttl += self.stale_ttl
            data = entry_header(version, fresh_until_ms, present=True) + self._codec.encode(value)
        backend_key = self.key(key)
        if self._signer is not None:
            data = self._signer.sign(backend_key, data)
        return Entry(backend_key, data, max(1, int(ttl * 1000)))

    def _unpack(self, data: bytes | memoryview, now: float) -> tuple[_Status, V | None]:
        stored = self._entry_decoder.decode(data)
        value = stored.value
        if value is msgspec.UNSET:
            return _MISS_RESULT if stored.fresh_until_ms == _FENCED else _ABSENT_RESULT
        if not stored.fresh_until_ms:
            return _Status.HIT, value
        fresh_until = stored.fresh_until_ms / 1000
        if now >= fresh_until:
            return _Status.STALE, value
        if (
            self.early_refresh
            and now - self._load_seconds * self.early_refresh * math.log(random.random() or 1e-12) >= fresh_until  # noqa: S311
        ):
            return _Status.EARLY, value
        return _Status.HIT, value

    # -- lookups ----------------------------------------------------------------------------------

    def _backend_keys(self, keys: Iterable[K]) -> list[str]:
        prefix = self._key_prefix
        encode = self._encode_key
        return [prefix + encode(key) for key in keys]

    async def _lookup(self, keys: Sequence[K]) -> list[tuple[_Status, V | None]]:
        near = self._near
        if near is None or not near.enabled:
            return await self._remote_lookup(self._backend_keys(keys))
        backend_keys = self._backend_keys(keys)
        results: list[tuple[_Status, V | None]] = [
            near.get(backend_key) or _MISS_RESULT for backend_key in backend_keys
        ]
        remote = [n for n, result in enumerate(results) if result is _MISS_RESULT]
        self.stats.near_hits += len(keys) - len(remote)
        self.stats.near_misses += len(remote)
        if remote:
            epoch = near.epoch
            fetched = await self._remote_lookup([backend_keys[n] for n in remote])
            for n, result in zip(remote, fetched, strict=True):
                results[n] = result
                if result[0] is _Status.HIT or result[0] is _Status.ABSENT:
                    near.put(backend_keys[n], result, epoch)
        return results

    async def _remote_lookup(self, backend_keys: list[str]) -> list[tuple[_Status, V | None]]:
        stats = self.stats
        fence = self._fence
        epoch = 0
        if fence is not None:
            epoch = fence.epoch
            if fence.trusted_until <= _monotonic():
                stats.misses += len(backend_keys)
                return [_MISS_RESULT] * len(backend_keys)
        if self._dirty and not await self._repair():
            stats.misses += len(backend_keys)
            return [_MISS_RESULT] * len(backend_keys)
        try:
            raw = await self._backend.get_many(backend_keys)
        except CacheBackendError:
            stats.errors += 1
            stats.misses += len(backend_keys)
            return [_MISS_RESULT] * len(backend_keys)
        if fence is not None and fence.epoch != epoch:  # the read went over a new connection: nothing fenced yet
            stats.misses += len(backend_keys)
            return [_MISS_RESULT] * len(backend_keys)
        unpack = self._unpack
        now = self._clock()  # once per batch: every entry of one read is judged at the same moment
        results: list[tuple[_Status, V | None]] = []
        append = results.append
        corrupt: list[str] = []
        signer = self._signer
        for n, data in enumerate(raw):
            if data is None:
                append(_MISS_RESULT)
                continue
            try:
                append(unpack(data if signer is None else signer.verify(backend_keys[n], data), now))
            except (msgspec.DecodeError, ValueError):
                corrupt.append(backend_keys[n])
                append(_MISS_RESULT)
        self._count(results, len(corrupt))
        if corrupt:
            logger.warning(
                "cache %s: deleting %d undecodable entries, e.g. %s", self.namespace, len(corrupt), corrupt[0]
            )
            await self._delete_backend_keys(corrupt)
        return results

    def _count(self, results: list[tuple[_Status, V | None]], corrupt: int) -> None:
        """Add one remote lookup's results to the stats (undecodable entries are misses too)."""
        misses = absent = stale = 0
        for status, _ in results:
            if status is _Status.MISS:
                misses += 1
            elif status is _Status.ABSENT:
                absent += 1
            elif status is _Status.STALE:
                stale += 1
        stats = self.stats
        stats.misses += misses
        stats.negative_hits += absent
        stats.hits += len(results) - misses - absent
        stats.stale_serves += stale
        stats.decode_errors += corrupt

    def _near_hit(self, key: K) -> tuple[_Status, V | None] | None:
        """The near cache's entry for one key, counted as a near hit; `None` on a near miss (not counted here)."""
        result = self._near.get(self._key_prefix + self._encode_key(key)) if self._near is not None else None
        if result is not None:
            self.stats.near_hits += 1
        return result

    async def get(self, key: K) -> V | None:
        """Return the cached value, or `None` on a miss, an "absent" entry or a backend error."""
        result = self._near_hit(key) or (await self._lookup((key,)))[0]
        return result[1]

    async def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """Return the cached values of those keys that have one, in one backend round trip."""
        unique = list(dict.fromkeys(keys))
        results = await self._lookup(unique)
        # Only served entries (fresh, stale or picked for refresh) carry a value; misses and absences carry None.
        return {key: value for key, (_, value) in zip(unique, results, strict=True) if value is not None}

    # -- writes -----------------------------------------------------------------------------------

    async def _write(self, items: Sequence[tuple[K, V | None, int]], ttl: float, *, track: bool = True) -> None:
        """Write entries.

        `track` marks an application write (not a fill from a load): it is remembered if it fails, and it is
        dropped from every near cache.
        """
        entries = [self._entry(key, value, version, ttl) for key, value, version in items]
        if track:
            await self._invalidate_near([entry.key for entry in entries])
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
                self._mark_dirty([(entry.key, version) for entry, (_, _, version) in zip(entries, items, strict=True)])
            return
        if track:
            if self._dirty:
                for n, entry in enumerate(entries):
                    if written is None or written[n]:
                        self._dirty.pop(entry.key, None)
            await self._publish([entry.key for entry in entries])

    async def _invalidate_near(self, backend_keys: list[str]) -> None:
        if self._near is not None:
            self.stats.near_invalidations += self._near.invalidate(backend_keys)

    async def _publish(self, backend_keys: list[str]) -> None:
        if self._bus is not None and not await self._bus.publish(backend_keys):
            self.stats.errors += 1

    def _mark_dirty(self, keys: Iterable[tuple[str, int]]) -> None:
        """Remember keys whose write or delete failed: they may still hold a value the caller replaced."""
        deadline = time.monotonic() + self.ttl
        for backend_key, version in keys:
            self._dirty.pop(backend_key, None)
            self._dirty[backend_key] = (deadline, version)
        while len(self._dirty) > _MAX_DIRTY:
            del self._dirty[next(iter(self._dirty))]

    async def _repair(self) -> bool:
        """Fence the keys whose write failed. Returns whether none are left.

        Until this succeeds the cache is not read: after an outage, the first thing it does is fence what it
        could not update during the outage, so it never serves a value the database no longer has. A key whose
        failed write carried a version gets a fence marker of that version (a miss that refuses older values:
        a load that read the old row before the write cannot fill it after the repair); others are deleted.
        Like any write, the repair drops the keys from every near cache.
        """
        now = time.monotonic()
        pending = {key: mark for key, mark in self._dirty.items() if mark[0] > now}
        if pending:
            try:
                await self._fence_keys([(key, version) for key, (_, version) in pending.items()])
            except CacheBackendError:
                self.stats.errors += 1
                return False
        for key, mark in pending.items():
            if self._dirty.get(key) == mark:
                del self._dirty[key]
        if not pending:
            self._dirty.clear()
        if pending:
            await self._publish(list(pending))
        return not self._dirty

    def _marker(self, backend_key: str, version: int, *, present: bool) -> Entry:
        """A fence marker (`present`: a miss, the value of a create or update is elsewhere) or a tombstone."""
        data = entry_header(version, _FENCED if present else 0, present=False)
        if self._signer is not None:
            data = self._signer.sign(backend_key, data)
        return Entry(backend_key, data, max(1, int((self.ttl + self.stale_ttl) * 1000)))

    async def _fence_keys(self, keys: Sequence[tuple[str, int]], *, tombstones: bool = False) -> None:
        """Drop `(backend key, version)` from the near cache; in the backend, replace older versions by markers.

        Raises:
            CacheBackendError: The backend did not take them.
        """
        await self._invalidate_near([key for key, _ in keys])
        versioned = [(key, version) for key, version in keys if version and self.version_of is not None]
        unversioned = [key for key, version in keys if not version or self.version_of is None]
        if versioned:
            entries = [self._marker(key, version, present=not tombstones) for key, version in versioned]
            # Compared as `version - 1`: a marker replaces only older versions, never the same version's value
            # (the write-through's), which would cost one more load for nothing.
            await self._backend.set_many_if_newer(entries, [version - 1 for _, version in versioned])
        if unversioned:
            await self._backend.delete_many(unversioned)

    async def apply_invalidations(self, items: Sequence[tuple[str, int, str]]) -> None:
        """Apply outbox rows `(key text, version, kind)` of this cache (`app.cache.fence`); idempotent.

        Loads of those keys under way are detached (later callers do not join a load that may have read the
        database before the write), the keys leave the near cache, and the backend gets a marker of the
        version under each key (a tombstone for a delete) unless it already holds that version or a newer one.

        Raises:
            CacheBackendError: The backend did not take them (the caller retries).
        """
        if self._inflight:
            by_text = {self._encode_key(key): key for key in self._inflight}
            self._detach_loads([by_text[text] for text, _, _ in items if text in by_text])
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

    def _detach_loads(self, keys: Iterable[K]) -> None:
        """Let callers that arrive after a write start a fresh load instead of joining one begun before it."""
        if self._inflight:
            for key in keys:
                self._inflight.pop(key, None)
                self._refreshing.discard(key)

    async def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store a value (in a versioned cache: unless a newer version is cached)."""
        self._detach_loads((key,))
        await self._write(self._versioned([(key, value)]), ttl or self.ttl)

    async def set_many(self, items: Mapping[K, V], ttl: float | None = None) -> None:
        """Store several values in one pipelined round trip."""
        self._detach_loads(items)
        await self._write(self._versioned(items.items()), ttl or self.ttl)

    async def set_absent(self, key: K, version: int = 0, ttl: float | None = None) -> None:
        """Cache that `key` has no value, for `ttl` (default `negative_ttl`) seconds.

        In a versioned cache, `version` makes this a tombstone: older values cannot replace it while it lives.
        """
        self._detach_loads((key,))
        ttl = ttl or self.negative_ttl
        if ttl > 0:
            await self._write([(key, None, version)], ttl)

    async def _delete_backend_keys(self, backend_keys: list[str]) -> None:
        await self._invalidate_near(backend_keys)
        try:
            await self._backend.delete_many(backend_keys)
        except CacheBackendError:
            self.stats.errors += 1
            self._mark_dirty([(backend_key, 0) for backend_key in backend_keys])
            return
        for backend_key in backend_keys:
            self._dirty.pop(backend_key, None)
        await self._publish(backend_keys)

    async def delete(self, key: K) -> None:
        """Remove a key (and any "absent" entry for it)."""
        self._detach_loads((key,))
        await self._delete_backend_keys([self.key(key)])

    async def delete_many(self, keys: Iterable[K]) -> None:
        """Remove several keys in one round trip."""
        keys = list(keys)
        self._detach_loads(keys)
        await self._delete_backend_keys(self._backend_keys(keys))

    # -- cache-aside ------------------------------------------------------------------------------

    async def get_or_load(self, key: K, loader: Callable[[K], Awaitable[V | None]]) -> V | None:
        """Return the cached value, or load, cache and return it.

        Concurrent calls for a key that is being loaded wait for that load instead of starting another.
        A `None` from the loader is cached as "absent" for `negative_ttl`. A loader error reaches every
        waiter and nothing is cached.
        """
        near = self._near_hit(key)
        if near is not None:  # only fresh entries and absences are kept near
            return near[1]
        fence = self._fence
        if fence is not None and fence.trusted_until <= _monotonic():
            # Not trusted: straight to the database, without joining a load that may predate a write.
            self.stats.misses += 1
            self.stats.loads += 1
            return await loader(key)
        flight = self._inflight.get(key)
        if flight is None or key in self._refreshing:  # a refresh is not waited for: the stale value is served
            status, value = (await self._lookup((key,)))[0]
            if status is _Status.HIT:
                return value
            if status is _Status.ABSENT:
                return None
            if status is not _Status.MISS:  # stale, or picked for an early refresh: served, reloaded behind
                if key not in self._inflight:
                    self.stats.refreshes += 1
                    self._start_load([key], _one_by_one(loader), refresh=True)
                return value
            flight = self._inflight.get(key)
            if flight is None:
                flight = self._start_load([key], _one_by_one(loader))[key]
            else:
                self.stats.coalesced += 1
        else:
            self.stats.coalesced += 1
        return await asyncio.shield(flight)

    async def get_many_or_load(
        self, keys: Iterable[K], loader: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> dict[K, V]:
        """Return values for `keys`: cached ones in one round trip, the misses from one `loader` call.

        `loader` gets the missing keys that no concurrent call is already loading, and returns the values it
        found; keys it leaves out are cached as "absent" (if negative caching is on) and left out of the
        result. Keys being loaded by a concurrent call are awaited, not loaded again. Entries past their soft
        TTL (or picked for early refresh) are returned at once and reloaded in the background.
        """
        fence = self._fence
        if fence is not None and fence.trusted_until <= _monotonic():
            unique = list(dict.fromkeys(keys))
            self.stats.misses += len(unique)
            self.stats.loads += len(unique)
            return dict(await loader(unique)) if unique else {}
        found: dict[K, V] = {}
        waiting: dict[K, asyncio.Future[V | None]] = {}
        to_lookup: list[K] = []
        for key in dict.fromkeys(keys):
            flight = self._inflight.get(key)
            if flight is None or key in self._refreshing:  # a refresh is not waited for: the stale value is served
                to_lookup.append(key)
            else:
                waiting[key] = flight
        missing = await self._collect(to_lookup, found, waiting, loader) if to_lookup else []
        self.stats.coalesced += len(waiting)
        if missing:
            waiting.update(self._start_load(missing, loader))
        for key, flight in waiting.items():
            value = await asyncio.shield(flight)
            if value is not None:
                found[key] = value
        return found

    async def _collect(
        self,
        keys: list[K],
        found: dict[K, V],
        waiting: dict[K, asyncio.Future[V | None]],
        loader: Callable[[list[K]], Awaitable[Mapping[K, V]]],
    ) -> list[K]:
        """Look `keys` up; fill `found` and `waiting`, start background refreshes, return the keys to load."""
        missing: list[K] = []
        refresh: list[K] = []
        for key, (status, value) in zip(keys, await self._lookup(keys), strict=True):
            if status in _SERVED:
                found[key] = value  # type: ignore[assignment]
                if status in _REFRESH and key not in self._inflight:
                    refresh.append(key)
            elif status is _Status.MISS:
                flight = self._inflight.get(key)
                if flight is None:
                    missing.append(key)
                else:
                    waiting[key] = flight
        if refresh:
            self.stats.refreshes += len(refresh)
            self._start_load(refresh, loader, refresh=True)  # served now; reloaded in the background by one caller
        return missing

    def _start_load(
        self, keys: list[K], loader: Callable[[list[K]], Awaitable[Mapping[K, V]]], *, refresh: bool = False
    ) -> dict[K, asyncio.Future[V | None]]:
        loop = asyncio.get_running_loop()
        flights: dict[K, asyncio.Future[V | None]] = {key: loop.create_future() for key in keys}
        self._inflight.update(flights)
        if refresh:
            self._refreshing.update(keys)
        task = loop.create_task(self._load(keys, loader, flights))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flights

    async def _load(
        self,
        keys: list[K],
        loader: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        flights: dict[K, asyncio.Future[V | None]],
    ) -> None:
        self.stats.loads += len(keys)
        started = time.perf_counter()
        try:
            loaded = await loader(keys)
            self._load_seconds = 0.8 * self._load_seconds + 0.2 * (time.perf_counter() - started)
            present = {key: loaded[key] for key in keys if key in loaded}
            if present:
                await self._write(self._versioned(present.items()), self.ttl, track=False)
            absent = [key for key in keys if key not in loaded]
            if absent and self.negative_ttl > 0:
                await self._write([(key, None, 0) for key in absent], self.negative_ttl, track=False)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            for flight in flights.values():
                if cancelled:
                    flight.cancel()
                else:
                    flight.set_exception(exc)
                    flight.exception()  # mark retrieved: a load nobody waits for any more is not an error
            if cancelled:
                raise
            return
        finally:
            for key, flight in flights.items():
                if self._inflight.get(key) is flight:
                    del self._inflight[key]
                    self._refreshing.discard(key)
        for key, flight in flights.items():
            flight.set_result(present.get(key))

    async def drain(self) -> None:
        """Cancel the loads still running (background refreshes, abandoned loads) and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
