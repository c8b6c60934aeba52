"""The stored entry: its header, its msgpack layout, jittered TTLs, soft expiry and the signing hook.

A stored entry is the msgpack array `[version, fresh_until_ms, value]`, or `[version, fresh_until_ms]` for a
cached absence, optionally followed by an `EntrySigner` tag. A Struct value is written as the array of its fields
in order (`Positional`), not as a map that repeats every field's name. The version is a 9-byte uint64 at a fixed offset;
`fresh_until_ms` takes as few bytes as msgpack allows (one without a soft TTL, and in markers). `EntryFormat`
packs and unpacks the entries of one typed cache; the header helpers let backends read an entry's version without
decoding its value.
"""

from __future__ import annotations

import base64
import hashlib
import math
import operator
import random
import struct
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import msgspec

from app.cache.backend import Entry
from app.cache.signing import SIGNED_LAYOUT

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from app.cache.policy import CachePolicy
    from app.cache.signing import EntrySigner

__all__ = (
    "ABSENT_RESULT",
    "ENTRY_FORMAT",
    "FENCED",
    "HEADER_SIZE",
    "MISS_RESULT",
    "EntryFormat",
    "Status",
    "entry_header",
    "schema_fingerprint",
    "stored_version",
    "tally",
)

V = TypeVar("V")

_VERSION = struct.Struct(">BBQ")
_FRESH_UNTIL = struct.Struct(">BQ")
_ARRAY_OF_3 = 0x93
_ARRAY_OF_2 = 0x92
_UINT64 = 0xCF
_MAX_FIXINT = 0x7F

ENTRY_FORMAT = b"entry-5"
"""Names the layout `entry_header` describes. It is part of every cache key's fingerprint
(`app.cache.codec.schema_fingerprint`), so a deploy that changes the layout reads none of the old entries.
`entry-3`: an absent entry with `fresh_until_ms` 1 is a fence marker (a miss), which `entry-2` readers would
take for "absent". `entry-4`: `fresh_until_ms` in its shortest msgpack form (one byte for 0 and for markers)
instead of a 9-byte uint64. `entry-5`: a Struct value as the array of its fields (`Positional`), not a map."""

HEADER_SIZE = _VERSION.size + 1
"""The fewest bytes before the value in a stored entry (11): the array marker, the 9-byte version and a one-byte
`fresh_until_ms` (0, or a fence marker's 1). An entry with a soft TTL has 8 more."""

FENCED = 1
"""`fresh_until_ms` of a fence marker: an "absent" entry that reads as a miss. Its version still makes the
compare-and-set refuse older values, so a load that read the database before a write cannot fill after it."""


def entry_header(version: int, fresh_until_ms: int, *, present: bool) -> bytes:
    """The bytes of a stored entry before its value: `HEADER_SIZE`, or 8 more with a soft TTL.

    The version is written as a 9-byte uint64 (msgpack allows a wider form than needed), which puts it at a fixed
    place, bytes 2 to 9, big endian: the Lua compare-and-set and the memory backend read it there without
    decoding the value (Lua reads it as a double, so versions are compared exactly below 2**53).
    `fresh_until_ms` follows in its shortest form: a positive fixint (0, or `FENCED`) or a uint64.
    """
    head = _VERSION.pack(_ARRAY_OF_3 if present else _ARRAY_OF_2, _UINT64, version)
    if fresh_until_ms <= _MAX_FIXINT:
        return head + bytes((fresh_until_ms,))
    return head + _FRESH_UNTIL.pack(_UINT64, fresh_until_ms)


def stored_version(value: bytes | None) -> int | None:
    """Return the version in a stored entry's header, or `None` if it has none."""
    if value is None or len(value) < HEADER_SIZE or value[0] not in (_ARRAY_OF_2, _ARRAY_OF_3) or value[1] != _UINT64:
        return None
    return int.from_bytes(value[2:10])


def schema_fingerprint(value_type: Any, layout: bytes = b"") -> str:
    """Return 4 characters (24 bits, URL-safe base64) that change whenever `value_type`'s msgspec schema changes.

    `ENTRY_FORMAT` and `layout` (the rest of the entry layout, such as a signature tag) go into it too. It only
    has to tell apart the schemas one namespace goes through across deploys, so 24 bits are plenty.
    """
    schema = msgspec.json.encode(msgspec.json.schema(value_type), order="sorted")
    return base64.urlsafe_b64encode(hashlib.blake2b(ENTRY_FORMAT + layout + schema, digest_size=3).digest()).decode()


class Positional:
    """A Struct type's values as the msgpack array of their fields: 65 bytes less than the map for a `User`.

    A map repeats each field's name in every entry; the array does not (the schema fingerprint in the key says
    which fields, in which order). Decoding checks each field against its annotation, constraints included, as
    decoding the Struct would, then builds the value with its constructor (~0.1 µs more than decoding the map).
    """

    __slots__ = ("build", "row", "row_type")

    def __init__(self, value_type: type[msgspec.Struct]) -> None:
        """Build the row type and the two conversions for `value_type` (see `of`)."""
        fields = msgspec.structs.fields(value_type)
        names = [field.name for field in fields]
        self.row_type: Any = tuple[tuple(field.type for field in fields)]  # pyright: ignore[reportInvalidTypeArguments]
        """The fields' annotations, constraints included: the decoder checks each field as the Struct's would."""
        self.row: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
        """A value's fields in order (in C; only the declared ones, so a subclass's extra fields are left out)."""
        # Keyword arguments by position, generated once (as `dataclasses` does): 0.7 µs less than `**dict(zip())`.
        arguments = ", ".join(f"{name}=row[{n}]" for n, name in enumerate(names))
        namespace: dict[str, Any] = {"value_type": value_type}
        exec(f"def build(row):\n    return value_type({arguments})", namespace)  # noqa: S102 - names are identifiers
        self.build: Callable[[tuple[Any, ...]], Any] = namespace["build"]
        """The value of a decoded row."""

    @classmethod
    def of(cls, value_type: Any) -> Positional | None:
        """The conversions for `value_type`, or `None` if its values are stored as msgspec encodes them.

        Only plain Structs of two fields or more: not array-like ones (already arrays), not tagged ones (their
        tag tells union members apart), not other types.
        """
        if not (isinstance(value_type, type) and issubclass(value_type, msgspec.Struct)):
            return None
        config = value_type.__struct_config__
        fields = value_type.__struct_fields__
        if config.array_like or config.tag is not None or len(fields) < 2:
            return None
        if not all(name.isidentifier() for name in fields):
            return None
        return cls(value_type)


class _Stored(msgspec.Struct, Generic[V], array_like=True):
    """A stored entry as one msgpack array (see `entry_header`): decoded in one call, in C."""

    version: int
    fresh_until_ms: int
    """Epoch milliseconds the entry is fresh until (soft TTL), 0 without a soft TTL."""
    value: V | msgspec.UnsetType = msgspec.UNSET
    """`UNSET` in a cached absence."""


class Status(Enum):
    """What a lookup found for one key."""

    HIT = 1
    MISS = 2
    ABSENT = 3
    STALE = 4
    """Past its soft TTL: served, and refreshed in the background."""
    EARLY = 5
    """Fresh, but chosen for an early refresh (served, and refreshed in the background)."""


MISS_RESULT: tuple[Status, None] = (Status.MISS, None)
ABSENT_RESULT: tuple[Status, None] = (Status.ABSENT, None)


def tally(results: list[tuple[Status, Any]]) -> tuple[int, int, int]:
    """Count the misses, absences and stale entries among one lookup's results."""
    misses = absent = stale = 0
    for status, _ in results:
        if status is Status.MISS:
            misses += 1
        elif status is Status.ABSENT:
            absent += 1
        elif status is Status.STALE:
            stale += 1
    return misses, absent, stale


class EntryFormat(Generic[V]):
    """Packs values of one type into stored entries and back, under one `CachePolicy`."""

    __slots__ = (
        "_decoder",
        "_encode",
        "_positional",
        "_signer",
        "clock",
        "fingerprint",
        "load_seconds",
        "policy",
        "value_type",
    )

    def __init__(
        self,
        value_type: type[V],
        policy: CachePolicy,
        *,
        clock: Callable[[], float] = time.time,
        signer: EntrySigner | None = None,
    ) -> None:
        """Build the codecs for `value_type` (once).

        Args:
            value_type: Any type msgspec can encode.
            policy: Lifetimes: jitter and the soft TTL are written into each entry, early refresh read from it.
            clock: Wall-clock seconds for soft TTLs (shared between processes).
            signer: Append a tag to every entry and refuse entries whose tag does not verify.
        """
        self.value_type = value_type
        self.fingerprint = schema_fingerprint(value_type, SIGNED_LAYOUT if signer is not None else b"")
        """Changes with the value type's schema and the entry layout (part of every key)."""
        self._encode = msgspec.msgpack.Encoder().encode
        self._positional = Positional.of(value_type)
        stored_type = value_type if self._positional is None else self._positional.row_type
        self._decoder: msgspec.msgpack.Decoder[_Stored[Any]] = msgspec.msgpack.Decoder(
            cast("Any", _Stored)[stored_type]
        )
        self._signer = signer
        self.policy = policy
        self.clock = clock
        self.load_seconds = 0.05
        """Running estimate of one load, for early refresh."""

    def observe_load(self, seconds: float) -> None:
        """Fold one load's duration into `load_seconds`."""
        self.load_seconds = 0.8 * self.load_seconds + 0.2 * seconds

    def pack(self, backend_key: str, value: V | None, version: int, ttl: float) -> Entry:
        """The entry storing `value` (`None`: a cached absence) under `backend_key` for about `ttl` seconds."""
        policy = self.policy
        if policy.jitter:
            ttl *= 1 - policy.jitter * random.random()  # noqa: S311 - not security sensitive
        if value is None:
            data = entry_header(version, 0, present=False)
        else:
            fresh_until_ms = 0
            if policy.soft:
                fresh_until_ms = int((self.clock() + ttl) * 1000)
                ttl += policy.stale_ttl
            positional = self._positional
            encoded = self._encode(value if positional is None else positional.row(value))
            data = entry_header(version, fresh_until_ms, present=True) + encoded
        if self._signer is not None:
            data = self._signer.sign(backend_key, data)
        return Entry(backend_key, data, max(1, int(ttl * 1000)))

    def marker(self, backend_key: str, version: int, *, present: bool) -> Entry:
        """A fence marker of `version` (`present`: a miss, the value is elsewhere) or a tombstone.

        It lives as long as any entry (TTL plus stale TTL), so it outlives whatever it fences.
        """
        data = entry_header(version, FENCED if present else 0, present=False)
        if self._signer is not None:
            data = self._signer.sign(backend_key, data)
        return Entry(backend_key, data, max(1, int((self.policy.ttl + self.policy.stale_ttl) * 1000)))

    def unpack_many(
        self, backend_keys: Sequence[str], raw: Sequence[bytes | None]
    ) -> tuple[list[tuple[Status, V | None]], list[str]]:
        """Unpack one read's entries (judged at one moment): the result per key, and the keys that did not decode."""
        unpack = self.unpack
        now = self.clock()
        results: list[tuple[Status, V | None]] = []
        append = results.append
        corrupt: list[str] = []
        for backend_key, data in zip(backend_keys, raw, strict=True):
            if data is None:
                append(MISS_RESULT)
                continue
            try:
                append(unpack(backend_key, data, now))
            except (msgspec.DecodeError, ValueError):
                corrupt.append(backend_key)
                append(MISS_RESULT)
        return results, corrupt

    def unpack(self, backend_key: str, data: bytes, now: float) -> tuple[Status, V | None]:
        """What the entry stored under `backend_key` holds, judged at `now` (epoch seconds).

        Raises:
            msgspec.DecodeError: The bytes are not an entry of this value type.
            ValueError: The entry's tag does not verify.
        """
        stored = self._decoder.decode(data if self._signer is None else self._signer.verify(backend_key, data))
        value = stored.value
        if value is msgspec.UNSET:
            return MISS_RESULT if stored.fresh_until_ms == FENCED else ABSENT_RESULT
        if self._positional is not None:
            value = self._positional.build(value)
        if not stored.fresh_until_ms:
            return Status.HIT, value
        fresh_until = stored.fresh_until_ms / 1000
        if now >= fresh_until:
            return Status.STALE, value
        early = self.policy.early_refresh
        if early and now - self.load_seconds * early * math.log(random.random() or 1e-12) >= fresh_until:  # noqa: S311
            return Status.EARLY, value
        return Status.HIT, value
