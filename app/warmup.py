"""The optional cache warm-up at start-up (`CACHE_WARMUP_ENTRIES`): every domain's `warm_up`, in the background.

An empty Redis (a new one, a flush, a failover to an empty replica) makes every request a miss until the working
set has been read once; with uniform reads over 100,000 users that takes minutes (README, "Cold starts"). A
warm-up loads the likely hottest entries in large batches first, while requests are served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache import CacheManager
    from app.db import Database
    from app.domain import Domain

__all__ = ("start_warm_up", "warm_up")

logger = logging.getLogger("app")


async def warm_up(domains: Sequence[Domain], database: Database, manager: CacheManager, count: int) -> int:
    """Run each domain's warm-up for up to `count` entries, one domain after the other; return how many were cached.

    A failing domain is logged (one WARNING line, no secrets) and skipped: a warm-up never stops the service.
    """
    total = 0
    for domain in domains:
        if domain.warm_up is None:
            continue
        started = time.monotonic()
        try:
            cached = await domain.warm_up(database, manager, count)
        except Exception as exc:  # noqa: BLE001 - logged: a warm-up never stops the service
            logger.warning("cache warm-up of %s failed: %s", domain.name, type(exc).__name__)
            continue
        total += cached
        logger.info("cache warm-up of %s: %d entries in %.1fs", domain.name, cached, time.monotonic() - started)
    return total


def start_warm_up(
    domains: Sequence[Domain], database: Database, manager: CacheManager, count: int
) -> asyncio.Task[int] | None:
    """Start `warm_up` in the background when `count` is above 0 (the caller cancels it at shutdown)."""
    if count <= 0 or not any(domain.warm_up is not None for domain in domains):
        return None
    return asyncio.create_task(warm_up(domains, database, manager, count), name="cache-warm-up")
