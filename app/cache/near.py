"""The near cache (L1): a bounded in-process map of decoded values in front of the backend.

Built so a large one does not pause the event loop: each entry is one msgspec Struct the garbage collector
does not track (`gc=False`), in one dictionary, so 100,000 entries add no tracked object of their own; the
`UUID`s a value holds (a Python object the collector tracks) are kept as their 18 msgpack bytes and rebuilt on
a hit (`_freeze`, `NearCache.get`), so a cache of `gc=False` Structs such as `User` leaves the collector
nothing to walk; a frequency sketch in a `bytearray` admits keys that come back; and entries stay until an
invalidation, an eviction or their lifetime ends, not a short fixed TTL that would re-create every entry (and
its garbage) every few seconds.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ("FrequencySketch", "NearCache", "footprint")

_ENTRY_OVERHEAD = 188
"""Bytes an entry costs besides its key and value: the entry Struct (64) and the ordered dict's slot and
link (measured with `tracemalloc`, `tests/cache/test_near.py`)."""

_EVICTION_PROBES = 8
"""Entries one put looks at, at most, to make room (so a put never walks the whole cache)."""

_sizeof = sys.getsizeof
_Struct = msgspec.Struct
_force_setattr = msgspec.structs.force_setattr
_pack_uuid = msgspec.msgpack.Encoder(uuid_format="bytes").encode
_unpack_uuid = msgspec.msgpack.Decoder(UUID).decode

_FIELDS: dict[tuple[str, ...], tuple[str, ...]] = {}
"""The `_Entry.frozen` tuples in use, shared by the entries that freeze the same fields."""

_WHOLE: tuple[str, ...] = ()
"""`_Entry.frozen` of an item that is itself a frozen `UUID`."""


class _Entry(msgspec.Struct, gc=False):
    """One near-cache entry. Not tracked by the garbage collector: it only holds its item and numbers."""

    item: Any
    expires: float
    size: int
    frozen: tuple[str, ...] | None = None
    """The item's fields held as packed `UUID`s (`_freeze`), `_WHOLE` if the item is one; `None`: stored as is."""
    referenced: bool = False
    """Read since the eviction hand last passed it (a second chance, as in CLOCK)."""
    hot: Any = None
    """The item as a hit returns it, kept once rebuilt for at most `NearCache.hot_limit` entries (tracked by the
    collector, so bounded): their hits return it as it is, without a copy."""


def _freeze(item: Any) -> tuple[Any, tuple[str, ...] | None]:
    """What to store for `item` so the garbage collector need not track it, and the fields a hit must rebuild.

    A `UUID` is a Python object with `__slots__`, which the collector tracks (100,000 of them make every full
    collection ~20 ms longer): a Struct's `UUID` fields are stored packed (18 bytes, untracked) in a copy of the
    Struct, and a bare `UUID` as its bytes. Anything else is stored as it is (lists, dicts and `gc=True` Structs
    stay tracked; a value type that wants to be free of the collector uses `gc=False` Structs of scalars).
    """
    if isinstance(item, _Struct):
        fields = tuple(name for name in item.__struct_fields__ if isinstance(getattr(item, name), UUID))
        if not fields:
            return item, None
        fields = _FIELDS.setdefault(fields, fields)  # one tuple per set of names: a new tuple is a tracked object
        husk = msgspec.structs.replace(item)  # a copy: the caller's value stays as it is
        for name in fields:
            _force_setattr(husk, name, _pack_uuid(getattr(item, name)))
        return husk, fields
    if isinstance(item, UUID):
        return _pack_uuid(item), _WHOLE
    return item, None


class FrequencySketch:
    """TinyLFU's count-min sketch: how often each key was asked for lately, in 16 bytes per cache entry.

    Four rows of 8-bit counters (saturating at 15) indexed by double hashing of `hash(key)`; the estimate is
    the smallest of the four. After `window` increments every counter is halved (one `bytes.translate`), so
    the sketch forgets what was popular long ago.
    """

    __slots__ = ("_mask", "_samples", "_table", "_width", "window")

    _HALVE = bytes(i >> 1 for i in range(256))

    def __init__(self, capacity: int) -> None:
        """Size the sketch for a cache of `capacity` entries: four counters per entry and row, window ten times it."""
        width = 1 << max(10, (4 * capacity - 1).bit_length())
        self._width = width
        self._mask = width - 1
        self._table = bytearray(4 * width)
        self._samples = 0
        self.window = 10 * capacity

    def _slots(self, key: str) -> tuple[int, int, int]:
        """The key's counter in row 0, and the two halves of the double hash for the other rows."""
        h = hash(key)
        low, high = h & 0xFFFFFFFF, ((h >> 32) & 0xFFFFFFFF) | 1
        return low & self._mask, low, high

    def frequency(self, key: str) -> int:
        """The estimated count of `key` (never below the true count since the last halving)."""
        table, mask, width = self._table, self._mask, self._width
        first, low, high = self._slots(key)
        return min(
            table[first],
            table[width + ((low + high) & mask)],
            table[2 * width + ((low + 2 * high) & mask)],
            table[3 * width + ((low + 3 * high) & mask)],
        )

    def increment(self, key: str) -> int:
        """Count one request for `key`; returns its new estimate. Unrolled: it runs on every near-cache fill."""
        table, mask, width = self._table, self._mask, self._width
        i0, low, high = self._slots(key)
        i1 = width + ((low + high) & mask)
        i2 = 2 * width + ((low + 2 * high) & mask)
        i3 = 3 * width + ((low + 3 * high) & mask)
        a, b, c, d = table[i0], table[i1], table[i2], table[i3]
        if a < 15:
            table[i0] = a = a + 1
        if b < 15:
            table[i1] = b = b + 1
        if c < 15:
            table[i2] = c = c + 1
        if d < 15:
            table[i3] = d = d + 1
        self._samples += 1
        if self._samples >= self.window:
            self._samples //= 2
            self._table = bytearray(table.translate(self._HALVE))
        return min(a, b, c, d)


def footprint(key: str, item: object) -> int:
    """Estimated bytes an entry holds: its key, its item and what the item refers to, one level deep.

    `item` is what the entry stores (`_freeze`): packed `UUID`s are counted as the bytes they are.
    """
    size = _ENTRY_OVERHEAD + _sizeof(key) + _sizeof(item)
    if isinstance(item, msgspec.Struct):
        return size + sum(map(_sizeof, msgspec.structs.astuple(item)))
    if isinstance(item, (tuple, list)):
        return size + sum(map(_sizeof, item))  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(item, dict):
        return size + sum(map(_sizeof, item)) + sum(map(_sizeof, item.values()))  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
    return size


class NearCache:
    """Decoded values by backend key: at most `max_entries` of them, holding at most `max_bytes` (estimated).

    **Lifetime.** An entry lives `ttl` seconds at most, and less when any of these drops it: an invalidation
    (`invalidate`: the pub/sub bus for every key any process writes, the consistency fence's sync for every
    outbox row), the bus's subscription going down (`enabled = False` clears everything), or the fence's trust
    lapsing and coming back (`trusted_until` set after it had passed clears everything: rows applied by a sync
    after a lapse are not the only ones an entry may have missed). While untrusted, nothing is answered.
    `epoch` counts invalidations, so a reader that fetched a value from the backend before an invalidation
    does not put it here after it.

    **Admission and eviction.** A put counts the key in a `FrequencySketch`. While there is room every key is
    stored; when full, the oldest entries not read since the hand last passed them are the victims (CLOCK:
    a read entry gets a second chance), and the newcomer only takes a victim's place if it was asked for more
    often than the victim and at least twice, so keys asked for once do not push out keys that come back.
    A hit is one dictionary look-up, one clock read and one flag set; a value stored with packed `UUID`s is
    rebuilt (a copy) on the hits of entries beyond the `hot_limit` that keep theirs.
    """

    __slots__ = (
        "_bytes",
        "_clock",
        "_data",
        "_enabled",
        "_hot",
        "_sketch",
        "_trusted_until",
        "epoch",
        "hot_limit",
        "max_bytes",
        "max_entries",
        "rejected",
        "ttl",
    )

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        hot_limit: int = 1024,
    ) -> None:
        """Create an empty, disabled near cache (the bus enables it once subscribed).

        `hot_limit`: entries whose packed item is also kept rebuilt once hit (tracked by the garbage collector, and
        not counted in `max_bytes`), so that the hottest keys' hits cost no copy (`get`).
        """
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self.hot_limit = hot_limit
        self._hot = 0
        """Entries holding their rebuilt item (`_Entry.hot`)."""
        self._sketch = FrequencySketch(max_entries)
        self._enabled = False
        self._trusted_until = float("inf")
        self.epoch = 0
        self.rejected = 0
        """Puts the admission policy turned away."""

    @property
    def enabled(self) -> bool:
        """Whether lookups may be answered from here."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value
        self.clear()

    @property
    def trusted_until(self) -> float:
        """The consistency fence's deadline (`app.cache.fence`, same monotonic clock): past it, nothing is answered.

        Setting it after it had passed clears the cache: the fence only vouches for the rows its syncs applied,
        and an entry that lived through the lapse is not worth that argument.
        """
        return self._trusted_until

    @trusted_until.setter
    def trusted_until(self, until: float) -> None:
        if self._trusted_until <= self._clock():
            self.clear()
        self._trusted_until = until

    @property
    def size_bytes(self) -> int:
        """The estimated bytes the entries hold (`footprint`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any | None:
        """Return the stored item, or `None` if there is none (or it expired, the cache is off or untrusted)."""
        entry = self._data.get(key)
        if entry is None:
            return None
        now = self._clock()
        if entry.expires <= now:
            self._drop(key)
            return None
        if now >= self._trusted_until:
            return None
        entry.referenced = True
        frozen = entry.frozen
        if frozen is None:
            return entry.item
        hot = entry.hot
        return self._rebuild(entry, frozen) if hot is None else hot

    def _rebuild(self, entry: _Entry, frozen: tuple[str, ...]) -> Any:
        """The item of an entry stored packed, with its UUIDs rebuilt (in C; ~0.3 µs for a `User`).

        Kept in the entry while fewer than `hot_limit` entries hold theirs, so the next hits on it cost no copy.
        """
        item = entry.item
        if frozen is _WHOLE:
            value = _unpack_uuid(item)
        else:
            value = item.__copy__()
            for name in frozen:
                _force_setattr(value, name, _unpack_uuid(getattr(item, name)))
        if self._hot < self.hot_limit:
            entry.hot = value
            self._hot += 1
        return value

    def put(self, key: str, item: Any, epoch: int) -> None:
        """Store `item` unless an invalidation came since `epoch` was read, the cache is off, or admission says no."""
        if not self._enabled or epoch != self.epoch:
            return
        frequency = self._sketch.increment(key)
        data = self._data
        old = data.pop(key, None)
        if old is not None:
            self._bytes -= old.size
            if old.hot is not None:
                self._hot -= 1
        now = self._clock()
        if old is None and frequency < 2 and len(data) >= self.max_entries and next(iter(data.values())).expires > now:
            self.rejected += 1  # the common refusal (full, the newcomer asked for once), before sizing the item
            return
        stored, frozen = _freeze(item)
        size = footprint(key, stored)
        if not self._make_room(frequency, size, now):
            self.rejected += 1
            return
        data[key] = _Entry(stored, now + self.ttl, size, frozen)
        self._bytes += size

    def _make_room(self, frequency: int, size: int, now: float) -> bool:
        """Evict until an entry of `size` bytes fits, unless the victims are asked for at least as often."""
        if size > self.max_bytes:
            return False
        data = self._data
        sketch = self._sketch
        for _ in range(_EVICTION_PROBES):
            if len(data) < self.max_entries and self._bytes + size <= self.max_bytes:
                return True
            key, victim = next(iter(data.items()))
            if victim.expires <= now:
                self._drop(key)
            elif victim.referenced:
                victim.referenced = False
                data.move_to_end(key)
            elif frequency >= 2 and frequency > sketch.frequency(key):
                self._drop(key)
            else:
                return False
        return len(data) < self.max_entries and self._bytes + size <= self.max_bytes

    def _drop(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        if entry.hot is not None:
            self._hot -= 1
        return True

    def invalidate(self, keys: Iterable[str]) -> int:
        """Drop `keys`; returns how many were present."""
        self.epoch += 1
        drop = self._drop
        return sum(drop(key) for key in keys)

    def clear(self) -> None:
        """Drop everything."""
        self.epoch += 1
        self._data.clear()
        self._bytes = 0
        self._hot = 0
