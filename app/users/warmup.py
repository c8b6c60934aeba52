"""The users' cache warm-up (`CACHE_WARMUP_ENTRIES`): the newest users, by id, in batches of `BATCH`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.users.caches import UserCaches
from app.users.repository import UserRepository

if TYPE_CHECKING:
    from app.cache import CacheManager
    from app.db import Database

__all__ = ("BATCH", "warm_users")

BATCH = 200
"""Users per query and per cache pipeline: small enough that one pipeline stays well inside `CACHE_TIMEOUT_MS`
(100 ms) on a loaded machine; a fill that times out is lost (counted in `cache_errors_total`), not retried."""


async def warm_users(database: Database, manager: CacheManager, count: int) -> int:
    """Cache up to `count` of the newest users (the highest ids: new accounts are the active ones) by id.

    Keyset pages of the primary key, newest first, each written as one fill (`Cache.fill_many`): versioned, so a
    user updated meanwhile keeps its newer entry. Returns how many users it read and handed to the cache (a fill
    that fails is lost, counted in `cache_errors_total`).
    """
    repository = UserRepository(database)
    by_id = UserCaches.of(manager).by_id
    written = 0
    before = None
    while written < count:
        users = await repository.newest(before, min(BATCH, count - written))
        if not users:
            break
        await by_id.fill_many({user.id: user for user in users})
        written += len(users)
        before = users[-1].id
    return written
