"""`DirtyKeys`: the keys whose write or delete failed, deleted before the cache is read again."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from app.cache.backend import CacheBackend

__all__ = ("DirtyKeys",)


class DirtyKeys:
    """Backend keys that may still hold a value the application replaced, each until its entry has expired anyway.

    Until `repair` succeeds the cache is not read: after an outage, the first thing it does is remove what it
    could not update during the outage, so it never serves a value the database no longer has.
    """

    __slots__ = ("_deadlines", "max_keys")

    def __init__(self, max_keys: int = 10_000) -> None:
        """Remember at most `max_keys` keys; beyond that the oldest are forgotten."""
        self._deadlines: dict[str, float] = {}
        self.max_keys = max_keys

    def __bool__(self) -> bool:
        return bool(self._deadlines)

    def __len__(self) -> int:
        return len(self._deadlines)

    def mark(self, backend_keys: Iterable[str], lifetime: float) -> None:
        """Remember keys whose write or delete failed, for `lifetime` seconds (the longest an entry lives)."""
        deadline = time.monotonic() + lifetime
        deadlines = self._deadlines
        for backend_key in backend_keys:
            deadlines.pop(backend_key, None)
            deadlines[backend_key] = deadline
        while len(deadlines) > self.max_keys:
            del deadlines[next(iter(deadlines))]

    def discard(self, backend_keys: Iterable[str]) -> None:
        """Forget keys that were written or deleted since."""
        if self._deadlines:
            for backend_key in backend_keys:
                self._deadlines.pop(backend_key, None)

    async def repair(self, backend: CacheBackend) -> bool:
        """Delete the remembered keys that may still be stored. Returns whether none are left.

        Raises:
            CacheBackendError: The delete failed; every key is kept.
        """
        now = time.monotonic()
        deadlines = self._deadlines
        pending = {key: deadline for key, deadline in deadlines.items() if deadline > now}
        if pending:
            await backend.delete_many(list(pending))
        for key, deadline in pending.items():
            if deadlines.get(key) == deadline:  # not marked again while the delete ran
                del deadlines[key]
        if not pending:
            deadlines.clear()
        return not deadlines
