"""A bounded in-process backend: TTL and LRU eviction on a monotonic clock. The embedded default."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from typing_extensions import override

from app.cache.backend import CacheBackend
from app.cache.entry import stored_version

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from app.cache.backend import Entry

__all__ = ("MemoryBackend",)


class MemoryBackend(CacheBackend):
    """An LRU dictionary of `(value, expires_at)` pairs.

    Expired entries are dropped when read or when they reach the LRU end; the size bound is exact.
    Every call completes without awaiting, so the backend needs no locks.
    """

    __slots__ = ("_clock", "_data", "max_entries")

    name = "memory"

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        """Create an empty backend.

        Args:
            max_entries: Least recently used entries are evicted beyond this many.
            clock: Seconds on a monotonic clock; tests inject their own.
        """
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def _get(self, key: str, now: float) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[0]

    def _put(self, entry: Entry, now: float) -> None:
        self._data[entry.key] = (entry.value, now + entry.ttl_ms / 1000)
        self._data.move_to_end(entry.key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        return [self._get(key, now) for key in keys]

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        now = self._clock()
        for entry in entries:
            self._put(entry, now)

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        now = self._clock()
        written: list[bool] = []
        for entry, version in zip(entries, versions, strict=True):
            current = stored_version(self._get(entry.key, now))
            ok = current is None or current <= version
            if ok:
                self._put(entry, now)
            written.append(ok)
        return written

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._data.pop(key, None)

    @override
    async def ping(self) -> None:
        return None

    @override
    async def close(self) -> None:
        self._data.clear()
