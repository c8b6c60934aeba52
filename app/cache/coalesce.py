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
    """Wrap a backend so concurrent `get_many` calls become one call (a DataLoader for reads).

    The first caller becomes the leader: it yields once to the event loop, so that every request handler that
    runs in the same tick can add its keys, and, if the previous batch is still out, goes on gathering until
    that batch lands; then it sends all the keys in one `get_many` and hands each caller its values. So at
    most one batch is out and one is filling: under load, batches stay full even when requests stop arriving
    in step (near-cache hits answer some requests at once, and those clients come back in other ticks). A
    caller alone pays one extra loop iteration; 100 concurrent cache hits pay one round trip instead of 100.
    Writes pass straight through.
    """

    __slots__ = ("_out", "_pending", "batched_calls", "batches")

    def __init__(self, inner: CacheBackend) -> None:
        """Wrap `inner`."""
        super().__init__(inner)
        self._pending: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] | None = None
        self._out: asyncio.Future[None] | None = None
        """Done when the batch out lands; `None` while none is out."""
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
            if self._out is not None:
                await asyncio.wait((self._out,))  # not cancelled with this caller: the batch out is not ours
        except BaseException:
            self._pending = None
            self._fail(followers, CacheBackendError("batched read cancelled"))
            raise
        self._pending = None
        self.batches += 1
        out = self._out = asyncio.get_running_loop().create_future()
        try:
            if not followers:
                return await self.inner.get_many(keys)
            self.batched_calls += len(followers)
            unique = list(dict.fromkeys([*keys, *(key for follower_keys, _ in followers for key in follower_keys)]))
            try:
                values = await self.inner.get_many(unique)
            except BaseException as exc:
                self._fail(followers, exc if isinstance(exc, CacheBackendError) else CacheBackendError(repr(exc)))
                raise
        finally:
            if self._out is out:
                self._out = None
            out.set_result(None)
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
