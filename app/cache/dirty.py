"""`DirtyKeys`: the keys whose write or delete failed, fenced before the cache is read again."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ("DirtyKeys",)


class DirtyKeys:
    """Backend keys that may still hold a value the application replaced, each until its entry has expired anyway.

    Until `repair` succeeds the cache is not read: after an outage, the first thing it does is fence what it
    could not update during the outage, so it never serves a value the database no longer has. Each key keeps
    the version its failed write carried (0 for a delete), so the repair can write a fence marker of that
    version (which refuses older values) rather than only delete.
    """

    __slots__ = ("_marks", "max_keys")

    def __init__(self, max_keys: int = 10_000) -> None:
        """Remember at most `max_keys` keys; beyond that the oldest are forgotten."""
        self._marks: dict[str, tuple[float, int]] = {}
        """Backend key -> (deadline, version the failed write carried; 0 for a delete)."""
        self.max_keys = max_keys

    def __bool__(self) -> bool:
        return bool(self._marks)

    def __len__(self) -> int:
        return len(self._marks)

    def mark(self, keys: Iterable[tuple[str, int]], lifetime: float) -> None:
        """Remember `(backend key, version)` pairs whose write or delete failed, for `lifetime` seconds.

        `lifetime` is the longest an entry lives; a delete's version is 0.
        """
        deadline = time.monotonic() + lifetime
        marks = self._marks
        for backend_key, version in keys:
            marks.pop(backend_key, None)
            marks[backend_key] = (deadline, version)
        while len(marks) > self.max_keys:
            del marks[next(iter(marks))]

    def discard(self, backend_keys: Iterable[str]) -> None:
        """Forget keys that were written or deleted since."""
        if self._marks:
            for backend_key in backend_keys:
                self._marks.pop(backend_key, None)

    async def repair(self, fence: Callable[[list[tuple[str, int]]], Awaitable[None]]) -> bool:
        """Fence the remembered keys that may still be stored. Returns whether none are left.

        Args:
            fence: Writes a marker of each `(backend key, version)` (or deletes it) and drops it from every
                near cache; raises `CacheBackendError` when the backend did not take them.

        Raises:
            CacheBackendError: From `fence`; every key is kept.
        """
        now = time.monotonic()
        marks = self._marks
        pending = {key: mark for key, mark in marks.items() if mark[0] > now}
        if pending:
            await fence([(key, version) for key, (_, version) in pending.items()])
        for key, mark in pending.items():
            if marks.get(key) == mark:  # not marked again while the repair ran
                del marks[key]
        if not pending:
            marks.clear()
        return not marks
