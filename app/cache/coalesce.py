"""Request coalescing: reads issued in the same event-loop tick share one backend round trip (one MGET)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from typing_extensions import override

from app.cache.backend import CacheBackendError, WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache.backend import CacheBackend

__all__ = ("CoalescingBackend",)


class CoalescingBackend(WrappingBackend):
    """Wrap a backend so concurrent `get_many` calls of one tick become one call (a DataLoader for reads).

    The first caller of a tick becomes the leader: it yields once to the event loop, so that every request
    handler that runs in the same tick can add its keys, then sends all the keys in one `get_many` and hands
    each caller its values. A caller alone pays one extra loop iteration; 100 concurrent cache hits pay one
    round trip instead of 100. Writes pass straight through.
    """

    __slots__ = ("_pending", "batched_calls", "batches")

    def __init__(self, inner: CacheBackend) -> None:
        """Wrap `inner`."""
        super().__init__(inner)
        self._pending: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] | None = None
        self.batches = 0
        """Backend reads sent (`cache_backend_reads_total` in /metrics)."""
        self.batched_calls = 0
        """Callers whose read rode along with another caller's (`cache_batched_reads_total` in /metrics)."""

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        pending = self._pending
        if pending is not None:
            future: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
            pending.append((keys, future))
            return await future
        followers: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] = []
        self._pending = followers
        try:
            await asyncio.sleep(0)
        except BaseException:
            self._pending = None
            self._fail(followers, CacheBackendError("batched read cancelled"))
            raise
        self._pending = None
        self.batches += 1
        if not followers:
            return await self.inner.get_many(keys)
        self.batched_calls += len(followers)
        unique = list(dict.fromkeys([*keys, *(key for follower_keys, _ in followers for key in follower_keys)]))
        try:
            values = await self.inner.get_many(unique)
        except BaseException as exc:
            self._fail(followers, exc if isinstance(exc, CacheBackendError) else CacheBackendError(repr(exc)))
            raise
        by_key = dict(zip(unique, values, strict=True))
        for follower_keys, future in followers:
            if not future.done():
                future.set_result([by_key[key] for key in follower_keys])
        return [by_key[key] for key in keys]

    @staticmethod
    def _fail(followers: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]], error: Exception) -> None:
        for _, future in followers:
            if not future.done():
                future.set_exception(error)
