"""`Cache[K, V]`: a typed view of a backend, with batching, negative entries and single-flight loads.

This module holds the read path (lookups, the near cache, cache-aside loading). The parts live in modules of
their own: state and writes in `app.cache.writes`, the stored entry in `app.cache.entry`, single-flight loading
in `app.cache.flight`, the keys to repair after failed writes in `app.cache.dirty`, lifetimes in
`app.cache.policy`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from app.cache.backend import CacheBackendError
from app.cache.entry import ABSENT_RESULT, MISS_RESULT, Status, tally
from app.cache.writes import CacheWrites

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

__all__ = ("Cache",)

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

_Loader: TypeAlias = "Callable[[Any], Awaitable[Any]]"
"""A loader of one key (`get_or_load`) or of a list of keys (`get_many_or_load`)."""
_HIT, _MISS, _ABSENT = Status.HIT, Status.MISS, Status.ABSENT
_monotonic = time.monotonic
_NONE_WITHHELD: Mapping[str, int] = MappingProxyType({})


class Cache(CacheWrites[K, V]):
    """Typed get/set/delete over a byte backend.

    Keys are `{prefix}:{namespace}:{fingerprint}:{key}`, where the fingerprint follows V's msgspec schema so
    a deploy that changes V never reads entries written for the old V. A backend failure never reaches the
    caller: reads degrade to misses and writes to no-ops, and `stats.errors` counts them.

    A versioned cache (`version_of` given) stores each value with its version and refuses to replace a
    cached value by an older one, which closes the cache-aside race between a slow reader and a writer.
    """

    __slots__ = ()

    def _untrusted(self) -> bool:
        """Whether the consistency fence forbids answering from the cache now."""
        fence = self._fence
        return fence is not None and fence.trusted_until <= _monotonic()

    async def _lookup(self, keys: Sequence[K]) -> list[tuple[Status, V | None]]:
        backend_keys = self._backend_keys(keys)
        near = self._near
        if near is None or not near.enabled:
            return await self._remote_lookup(backend_keys)
        results: list[tuple[Status, V | None]] = []
        remote: list[int] = []
        for n, backend_key in enumerate(backend_keys):
            item = near.get(backend_key)
            if item is None:
                remote.append(n)
                results.append(MISS_RESULT)
            else:
                results.append(item if item is ABSENT_RESULT else (_HIT, item))
        self.stats.near_hits += len(keys) - len(remote)
        self.stats.near_misses += len(remote)
        if remote:
            epoch = near.epoch
            fetched = await self._remote_lookup([backend_keys[n] for n in remote])
            for n, result in zip(remote, fetched, strict=True):
                results[n] = result
                # Only fresh entries and absences are kept near: a value as itself, an absence as ABSENT_RESULT.
                if result[0] is _HIT:
                    near.put(backend_keys[n], result[1], epoch)
                elif result[0] is _ABSENT:
                    near.put(backend_keys[n], ABSENT_RESULT, epoch)
        return results

    async def _remote_lookup(self, backend_keys: list[str]) -> list[tuple[Status, V | None]]:
        stats = self.stats
        fence = self._fence
        epoch = 0
        withheld = _NONE_WITHHELD
        if fence is not None:
            epoch = fence.epoch
            withheld = fence.withheld  # the masters not trusted yet (a cluster's, `CacheFence.withhold`)
            if fence.trusted_until <= _monotonic():
                stats.misses += len(backend_keys)
                return [MISS_RESULT] * len(backend_keys)
        try:
            if self._dirty and not await self._dirty.repair(self._repair_keys):
                stats.misses += len(backend_keys)
                return [MISS_RESULT] * len(backend_keys)
            raw = await self._backend.get_many(backend_keys)
        except CacheBackendError:
            stats.errors += 1
            stats.misses += len(backend_keys)
            return [MISS_RESULT] * len(backend_keys)
        # A read over a new connection (or, on a cluster, a withheld master's) is a miss: nothing fenced yet.
        if fence is not None and (withheld or fence.epoch != epoch):
            raw = list(raw)
            if not fence.screen(backend_keys, raw, withheld, epoch):  # misses are never kept near
                stats.misses += len(backend_keys)
                return [MISS_RESULT] * len(backend_keys)
        results, corrupt = self._format.unpack_many(backend_keys, raw)
        misses, absent, stale = tally(results)
        stats.misses += misses
        stats.negative_hits += absent
        stats.hits += len(results) - misses - absent
        stats.stale_serves += stale
        if corrupt:
            stats.decode_errors += len(corrupt)
            logger.warning(
                "cache %s: deleting %d undecodable entries, e.g. %s", self.namespace, len(corrupt), corrupt[0]
            )
            await self._delete_backend_keys(corrupt)
        return results

    def _near_item(self, key: K) -> Any | None:
        """The near cache's item for `key` (a value, or `ABSENT_RESULT`), counted as a near hit; `None` on a miss.

        A near miss is counted by `_lookup`, which looks again (a miss pays one more dictionary look-up).
        """
        near = self._near
        item = near.get(self.key(key)) if near is not None else None
        if item is not None:
            self.stats.near_hits += 1
        return item

    async def get(self, key: K) -> V | None:
        """Return the cached value, or `None` on a miss, an "absent" entry or a backend error."""
        item = self._near_item(key) if self._near is not None else None
        if item is not None:
            return None if item is ABSENT_RESULT else item
        return (await self._lookup((key,)))[0][1]

    async def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """Return the cached values of those keys that have one, in one backend round trip."""
        unique = list(dict.fromkeys(keys))
        results = await self._lookup(unique)
        # Only served entries (fresh, stale or picked for refresh) carry a value; misses and absences carry None.
        return {key: value for key, (_, value) in zip(unique, results, strict=True) if value is not None}

    async def get_or_load(self, key: K, loader: Callable[[K], Awaitable[V | None]]) -> V | None:
        """Return the cached value, or load, cache and return it.

        Concurrent calls for a key that is being loaded wait for that load instead of starting another.
        A `None` from the loader is cached as "absent" for `negative_ttl`. A loader error reaches every
        waiter and nothing is cached.
        """
        keys = (key,)
        if self._flights.running:
            return await self._get_or_join(key, loader)
        item = self._near_item(key) if self._near is not None else None
        if item is not None:  # only fresh entries and absences are kept near (and only while trusted)
            return None if item is ABSENT_RESULT else item
        if self._untrusted():
            return await self._load_untrusted(key, loader)
        looked_up = await self._lookup(keys)  # nothing in flight: a hit or an absence is decided here
        status, value = looked_up[0]
        if status is _HIT or status is _ABSENT:
            return value
        return (await self._resolve(keys, loader, one=True, looked_up=looked_up)).get(key)

    async def get_many_or_load(
        self, keys: Iterable[K], loader: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> dict[K, V]:
        """Return values for `keys`: cached ones in one round trip, the misses from one `loader` call.

        `loader` gets the missing keys that no concurrent call is already loading, and returns the values it
        found; keys it leaves out are cached as "absent" (if negative caching is on) and left out of the
        result. Keys being loaded by a concurrent call are awaited, not loaded again. Entries past their soft
        TTL (or picked for early refresh) are returned at once and reloaded in the background.
        """
        unique = list(dict.fromkeys(keys))
        if self._untrusted():
            # Not trusted: straight to the database, without joining a load that may predate a write.
            self.stats.misses += len(unique)
            self.stats.loads += len(unique)
            return dict(await loader(unique)) if unique else {}
        return await self._resolve(unique, loader, one=False)

    async def _get_or_join(self, key: K, loader: Callable[[K], Awaitable[V | None]]) -> V | None:
        """`get_or_load` while loads are in flight: join the load of `key` if there is one, else resolve it."""
        if self._untrusted():
            return await self._load_untrusted(key, loader)
        flight = self._flights.joinable(key)
        if flight is not None:  # `_resolve`'s join, for one key without its bookkeeping (a miss storm's path)
            self.stats.coalesced += 1
            return await asyncio.shield(flight)
        return (await self._resolve((key,), loader, one=True)).get(key)

    async def _load_untrusted(self, key: K, loader: Callable[[K], Awaitable[V | None]]) -> V | None:
        """Not trusted: straight to the database, without joining a load that may predate a write."""
        self.stats.misses += 1
        self.stats.loads += 1
        return await loader(key)

    async def _resolve(
        self,
        keys: Sequence[K],
        loader: _Loader,
        *,
        one: bool,
        looked_up: list[tuple[Status, V | None]] | None = None,
    ) -> dict[K, V]:
        """The one cache-aside path: look `keys` up, join loads in flight, load the rest in one call.

        `one` says `loader` takes a single key (`get_or_load`) rather than a list of them; `looked_up` is the
        lookup of `keys` already made while no load was in flight.
        """
        flights = self._flights
        waiting, keys = flights.split(keys) if looked_up is None else ({}, keys)
        found: dict[K, V] = {}
        missing = await self._serve(keys, looked_up, found, waiting, loader=loader, one=one) if keys else None
        if not waiting and not missing:
            return found
        self.stats.coalesced += len(waiting)
        if missing:
            waiting.update(flights.start(missing, self._filler(loader, one)))
        return await flights.wait(waiting, found)

    async def _serve(
        self,
        keys: Sequence[K],
        looked_up: list[tuple[Status, V | None]] | None,
        found: dict[K, V],
        waiting: dict[K, asyncio.Future[V | None]],
        *,
        loader: _Loader,
        one: bool,
    ) -> list[K]:
        """Sort `keys` (looked up now, or `looked_up`) into `found` and `waiting`; return the keys to load."""
        running = self._flights.running
        missing: list[K] = []
        refresh: list[K] = []
        for key, (status, value) in zip(keys, looked_up or await self._lookup(keys), strict=True):
            if status is _HIT:
                found[key] = value  # type: ignore[assignment]
            elif status is _MISS:
                flight = running.get(key)  # started while this lookup ran
                if flight is None:
                    missing.append(key)
                else:
                    waiting[key] = flight
            elif status is not _ABSENT:  # stale, or picked for an early refresh: served, reloaded behind
                found[key] = value  # type: ignore[assignment]
                if key not in running:
                    refresh.append(key)
        if refresh:
            self.stats.refreshes += len(refresh)
            self._flights.start(refresh, self._filler(loader, one), refresh=True)
        return missing

    def _filler(self, loader: _Loader, one: bool) -> Callable[[list[K]], Awaitable[Mapping[K, V | None]]]:
        """The load a flight runs: call `loader`, cache what it found (and, as absent, what it did not)."""

        async def fill(keys: list[K]) -> Mapping[K, V | None]:
            self.stats.loads += len(keys)
            started = time.perf_counter()
            if one:
                value = await loader(keys[0])
                loaded: Mapping[K, V] = {} if value is None else {keys[0]: value}
            else:
                loaded = await loader(keys)
            self._format.observe_load(time.perf_counter() - started)
            present = {key: loaded[key] for key in keys if key in loaded}
            if present:
                await self._write(self._versioned(present.items()), self.policy.ttl, track=False)
            absent = [key for key in keys if key not in loaded]
            if absent and self.policy.negative_ttl > 0:
                await self._write([(key, None, 0) for key in absent], self.policy.negative_ttl, track=False)
            return present

        return fill

    async def drain(self) -> None:
        """Cancel the loads still running (background refreshes, abandoned loads) and wait for them to end."""
        await self._flights.drain()
