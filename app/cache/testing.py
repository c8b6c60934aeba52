"""Helpers for testing code that uses the cache: a fault-injecting backend wrapper."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from typing_extensions import override

from app.cache.backend import CacheBackendError, WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache.backend import CacheBackend, Entry

__all__ = ("FaultyBackend",)


class FaultyBackend(WrappingBackend):
    """Wrap a backend and make its calls fail or slow down on demand.

    Set `failing = True` to make every call raise `CacheBackendError`, and `latency` (seconds) to delay
    every call. `calls` counts the calls that reached the wrapper, by operation.
    """

    __slots__ = ("calls", "failing", "latency")

    def __init__(self, inner: CacheBackend, *, failing: bool = False, latency: float = 0.0) -> None:
        """Wrap `inner`, healthy unless told otherwise."""
        super().__init__(inner)
        self.failing = failing
        self.latency = latency
        self.calls: dict[str, int] = {}

    async def _enter(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failing:
            raise CacheBackendError(f"injected fault in {operation}")

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await self._enter("get_many")
        return await self.inner.get_many(keys)

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        await self._enter("set_many")
        await self.inner.set_many(entries)

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        await self._enter("set_many_if_newer")
        return await self.inner.set_many_if_newer(entries, versions)

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._enter("delete_many")
        await self.inner.delete_many(keys)

    @override
    async def ping(self) -> None:
        await self._enter("ping")
        await self.inner.ping()
