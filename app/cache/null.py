"""A backend that stores nothing: caching disabled, every read a miss (for tests and the miss-path benchmark)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.cache.backend import CacheBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache.backend import Entry

__all__ = ("NullBackend",)


class NullBackend(CacheBackend):
    """Every read misses, every write is dropped; with it, each request goes to the loader (the database)."""

    __slots__ = ()

    name = "none"

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:  # noqa: D102
        return [None] * len(keys)

    async def set_many(self, entries: Sequence[Entry]) -> None:  # noqa: D102
        return None

    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:  # noqa: D102
        return [True] * len(entries)

    async def delete_many(self, keys: Sequence[str]) -> None:  # noqa: D102
        return None

    async def ping(self) -> None:  # noqa: D102
        return None

    async def close(self) -> None:  # noqa: D102
        return None
