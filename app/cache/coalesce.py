"""Request coalescing: the reads of one event-loop tick share one round trip (one MGET), and so do its writes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from app.cache.backend import FENCE_WRITE, CacheBackendError, WrappingBackend

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache.backend import CacheBackend, Entry

__all__ = ("CoalescingBackend",)

_Writes = tuple["Sequence[Entry]", "Sequence[int] | None"]
"""One caller's write: its entries, and their versions for `set_many_if_newer` (`None`: `set_many`)."""


class CoalescingBackend(WrappingBackend):
    """Wrap a backend so concurrent `get_many` calls become one call (a DataLoader for reads).

    The first caller of a tick becomes the leader: it yields once to the event loop, so that every request
    handler that runs in the same tick can add its keys, then sends all the keys in one `get_many` and hands
    each caller its values. A caller alone pays one extra loop iteration; 100 concurrent cache hits pay one
    round trip instead of 100. (Holding a batch until the previous one lands made batches fuller with the near
    cache on, but put every read behind a slow one: a cluster failover then kept the invalidation listeners
    from resubscribing, `tests/consistency/test_near_cluster.py`.)

    Writes are coalesced per tick, `set_many` calls with `set_many` calls and `set_many_if_newer` calls with
    `set_many_if_newer` calls: the cache fills of a miss storm go out as one pipeline per tick, not one each, and
    each caller gets its own entries' results (in call order, so two writes of one key keep their order). A failed
    batch raises `CacheBackendError` in every caller, which degrades as after its own failed write. Deletes pass
    straight through.
    """

    __slots__ = ("_pending", "_writes", "batched_calls", "batched_writes", "batches", "write_batches")

    def __init__(self, inner: CacheBackend) -> None:
        """Wrap `inner`."""
        super().__init__(inner)
        self._pending: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] | None = None
        self.batches = 0
        """Backend reads sent (`cache_backend_reads_total` in /metrics)."""
        self.batched_calls = 0
        """Callers whose read rode along with another caller's (`cache_batched_reads_total` in /metrics)."""
        self._writes: dict[bool, list[tuple[_Writes, asyncio.Future[list[bool]]]]] = {}
        """The followers of the tick's leading write, by kind (`True`: versioned)."""
        self.write_batches = 0
        """Backend writes sent (`cache_backend_writes_total` in /metrics)."""
        self.batched_writes = 0
        """Callers whose write rode along with another caller's (`cache_batched_writes_total` in /metrics)."""

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

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self._write((entries, None))

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        return await self._write((entries, versions)) if entries else []

    async def _write(self, write: _Writes) -> list[bool]:
        """Send `write` with the other writes of its kind of this tick; return its entries' results."""
        if FENCE_WRITE.get():  # rare, and its failure means something else (`CacheBackendResetError`): alone
            return await self._send(write)
        versioned = write[1] is not None
        followers = self._writes.get(versioned)
        if followers is not None:
            future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
            followers.append((write, future))
            return await future
        followers = self._writes[versioned] = []
        try:
            await asyncio.sleep(0)
        except BaseException:
            del self._writes[versioned]
            self._fail(followers, CacheBackendError("batched write cancelled"))
            raise
        del self._writes[versioned]
        self.write_batches += 1
        if not followers:
            return await self._send(write)
        self.batched_writes += len(followers)
        writes = [write, *(follower for follower, _ in followers)]
        entries = [entry for write_entries, _ in writes for entry in write_entries]
        versions = [version for _, write_versions in writes for version in write_versions or ()]
        try:
            written = await self._send((entries, versions if versioned else None))
        except BaseException as exc:
            self._fail(followers, exc if isinstance(exc, CacheBackendError) else CacheBackendError(repr(exc)))
            raise
        start = len(write[0])
        for (follower_entries, _), future in followers:
            end = start + len(follower_entries)  # `written` is empty for `set_many`: every slice is too
            if not future.done():
                future.set_result(written[start:end])
            start = end
        return written[: len(write[0])]

    async def _send(self, write: _Writes) -> list[bool]:
        entries, versions = write
        if versions is None:
            await self.inner.set_many(entries)
            return []
        return await self.inner.set_many_if_newer(entries, versions)

    @staticmethod
    def _fail(followers: Sequence[tuple[object, asyncio.Future[Any]]], error: Exception) -> None:
        for _, future in followers:
            if not future.done():
                future.set_exception(error)
