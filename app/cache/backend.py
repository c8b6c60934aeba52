"""The byte-level interface every cache backend implements."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = (
    "ENTRY_FORMAT",
    "HEADER_SIZE",
    "CacheBackend",
    "CacheBackendError",
    "Entry",
    "entry_header",
    "stored_version",
)

_HEADER = struct.Struct(">BBQBQ")
_ARRAY_OF_3 = 0x93
_ARRAY_OF_2 = 0x92
_UINT64 = 0xCF

ENTRY_FORMAT = b"entry-3"
"""Names the layout `entry_header` describes. It is part of every cache key's fingerprint
(`app.cache.codec.schema_fingerprint`), so a deploy that changes the layout reads none of the old entries.
`entry-3`: an absent entry with `fresh_until_ms` 1 is a fence marker (a miss), which `entry-2` readers would
take for "absent"."""

HEADER_SIZE = _HEADER.size
"""Bytes before the value in a stored entry (19)."""


def entry_header(version: int, fresh_until_ms: int, *, present: bool) -> bytes:
    """The first `HEADER_SIZE` bytes of a stored entry.

    A stored entry is the msgpack array `[version, fresh_until_ms, value]`, or `[version, fresh_until_ms]`
    for a cached absence, so one msgpack decode reads all of it. Both integers are written as 9-byte uint64
    (msgpack allows a wider form than needed), which puts the version at a fixed place, bytes 2 to 9, big
    endian: the Lua compare-and-set and the memory backend read it there without decoding the value (Lua
    reads it as a double, so versions are compared exactly below 2**53).
    """
    return _HEADER.pack(_ARRAY_OF_3 if present else _ARRAY_OF_2, _UINT64, version, _UINT64, fresh_until_ms)


class CacheBackendError(Exception):
    """A backend could not serve a call (connection refused, timeout, circuit open, ...)."""


class Entry(NamedTuple):
    """One item of a `set_many` call."""

    key: str
    value: bytes
    ttl_ms: int
    """Time to live in milliseconds; must be positive."""


class CacheBackend(ABC):
    """Bytes in, bytes out. Single-key operations are the batch operations with one key.

    Implementations raise `CacheBackendError` (and nothing else) when they cannot serve a call, so
    callers can degrade without catching broad exceptions.
    """

    __slots__ = ()

    name: str = "backend"

    @abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the value for each key, in order, `None` where absent or expired."""

    @abstractmethod
    async def set_many(self, entries: Sequence[Entry]) -> None:
        """Store every entry with its own time to live."""

    @abstractmethod
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        """Store each entry unless the stored value carries a newer version (an equal one is replaced).

        Values written this way start with `entry_header`, which holds their version; a stored value
        without a readable version is replaced.

        Returns:
            For each entry, whether it was written.
        """

    @abstractmethod
    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete the keys; missing keys are ignored."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `CacheBackendError` unless the backend answers."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the backend owns. Idempotent."""


def stored_version(value: bytes | None) -> int | None:
    """Return the version in a stored entry's header, or `None` if it has none."""
    if value is None or len(value) < HEADER_SIZE or value[0] not in (_ARRAY_OF_2, _ARRAY_OF_3) or value[1] != _UINT64:
        return None
    return int.from_bytes(value[2:10])
