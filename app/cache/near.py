"""The near cache (L1): a small in-process map of decoded values in front of the backend."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ("NearCache",)


class NearCache:
    """Decoded values by backend key, each for at most `ttl` seconds, at most `max_entries` of them.

    Beyond `max_entries` the entry written longest ago goes first: reads do not reorder, so a hit is one
    dictionary look-up.

    It is only correct while something drops entries that change elsewhere: the `InvalidationBus` calls
    `invalidate` for every key any process writes, and turns the near cache off (`enabled = False`, which
    also clears it) whenever its subscription is down. `epoch` counts invalidations, so a reader that
    fetched a value from the backend before an invalidation does not put it in the near cache after it.

    `trusted_until` is the consistency fence's deadline (`app.cache.fence`, on the same monotonic clock): past
    it, nothing is answered from here, whatever the entries' own lifetimes.
    """

    __slots__ = ("_clock", "_data", "_enabled", "epoch", "max_entries", "trusted_until", "ttl")

    def __init__(
        self, *, max_entries: int = 10_000, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create an empty, disabled near cache (the bus enables it once subscribed)."""
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._enabled = False
        self.epoch = 0
        self.trusted_until = float("inf")

    @property
    def enabled(self) -> bool:
        """Whether lookups may be answered from here."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value
        self.clear()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any | None:
        """Return the stored item, or `None` if there is none (or it expired, the cache is off or untrusted)."""
        item = self._data.get(key)
        if item is None:
            return None
        now = self._clock()
        if item[1] <= now:
            del self._data[key]
            return None
        if now >= self.trusted_until:
            return None
        return item[0]

    def put(self, key: str, item: Any, epoch: int) -> None:
        """Store `item` unless an invalidation arrived since `epoch` was read (or the cache is off)."""
        if not self._enabled or epoch != self.epoch:
            return
        self._data[key] = (item, self._clock() + self.ttl)
        self._data.move_to_end(key)
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def invalidate(self, keys: Iterable[str]) -> int:
        """Drop `keys`; returns how many were present."""
        self.epoch += 1
        dropped = 0
        for key in keys:
            if self._data.pop(key, None) is not None:
                dropped += 1
        return dropped

    def clear(self) -> None:
        """Drop everything."""
        self.epoch += 1
        self._data.clear()
