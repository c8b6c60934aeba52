"""The byte-level interface every cache backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from typing_extensions import override

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("FENCE_WRITE", "CacheBackend", "CacheBackendError", "CacheBackendResetError", "Entry", "WrappingBackend")


class CacheBackendError(Exception):
    """A backend could not serve a call (connection refused, timeout, circuit open, ...)."""


class CacheBackendResetError(CacheBackendError):
    """A consistency-fence write failed, and every connection it failed on was reset.

    Any later reply from the part of the backend that did not take the write is read over a new connection, and
    the backend announces every new connection (the fence's `revoke`) before handing out a reply read over it:
    for the fence, the write is as good as applied (`docs/consistency.md`, §4b).
    """


FENCE_WRITE: ContextVar[bool] = ContextVar("cache_fence_write", default=False)
"""Set while a consistency-fence write (a marker, a tombstone, a delete) is under way. A backend that can reset
the connection a failed part of it went over, and that announces reconnects, then raises
`CacheBackendResetError`; others ignore it."""


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

        Values written this way start with `app.cache.entry.entry_header`, which holds their version; a stored value
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


class WrappingBackend(CacheBackend):
    """A backend that delegates every call to `inner`: the base of decorators (breaker, coalescing, faults).

    A subclass overrides only the calls it changes; `name` is the wrapped backend's.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: CacheBackend) -> None:
        """Wrap `inner`."""
        self.inner = inner

    @property
    def name(self) -> str:  # type: ignore[override]
        """The wrapped backend's name."""
        return self.inner.name

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self.inner.get_many(keys)

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        await self.inner.set_many(entries)

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        return await self.inner.set_many_if_newer(entries, versions)

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        await self.inner.delete_many(keys)

    @override
    async def ping(self) -> None:
        await self.inner.ping()

    @override
    async def close(self) -> None:
        await self.inner.close()
