"""A backend that stores nothing: caching disabled, every read a miss (for tests and the miss-path benchmark)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import override

from app.cache.backend import CacheBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache.backend import Entry

__all__ = ("NullBackend",)


class NullBackend(CacheBackend):
    """Every read misses, every write is dropped; with it, each request goes to the loader (the database)."""

    __slots__ = ()

    name = "none"

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None] * len(keys)

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        return None

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        return [True] * len(entries)

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        return None

    @override
    async def ping(self) -> None:
        return None

    @override
    async def close(self) -> None:
        return None
