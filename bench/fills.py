"""The cost of a miss storm's cache fills: writes coalesced into one pipeline per tick, against one pipeline each.

`python -m bench.fills [REDIS_URL]` (default: a throw-away redis-server). 32 concurrent tasks each resolve misses
of `USER_BY_ID` with `get_or_load` (the loader answers at once: the database is not what is measured), on the
service's backend stack (breaker, coalescing) with write coalescing on, and with writes passed straight through
as before; rounds alternate the two, so machine load affects both alike. Prints the median misses per second and
CPU microseconds per miss of this process for each, and their ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import TYPE_CHECKING

import uvloop
from typing_extensions import override

from app.cache import Cache, CircuitBreakerBackend, CoalescingBackend, RedisBackend
from app.users.caches import USER_BY_ID
from bench.fixtures import synthetic_users
from tests.servers import RedisServer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache import CacheBackend, Entry
    from app.users.models import User

__all__ = ("measure",)

TASKS = 32
MISSES = 6_400
ROUNDS = 6


class _WritesPassThrough(CoalescingBackend):
    """Reads coalesced, writes one call each: the backend before write coalescing."""

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        await self.inner.set_many(entries)

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        return await self.inner.set_many_if_newer(entries, versions)


async def _storm(backend: CacheBackend, users: list[User], offset: int) -> tuple[float, float]:
    """Misses per second and CPU µs per miss of `MISSES` misses on keys nobody has read yet."""
    cache: Cache[int, User] = Cache(
        backend, namespace=f"fills{offset}", key_type=int, value_type=USER_BY_ID.value_type,
        version_of=USER_BY_ID.version_of,
    )  # fmt: skip
    by_id = {n: users[n % len(users)] for n in range(MISSES)}

    async def load(key: int) -> User:
        return by_id[key]

    async def worker(start: int) -> None:
        for key in range(start, MISSES, TASKS):
            await cache.get_or_load(key, load)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(start) for start in range(TASKS)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if cache.stats.loads != MISSES or cache.stats.errors:
        raise RuntimeError(f"expected {MISSES} loads and no errors: {cache.stats}")
    return MISSES / wall, cpu / MISSES * 1e6


async def measure(url: str, rounds: int = ROUNDS) -> dict[str, tuple[float, float]]:
    """Median (misses/s, CPU µs per miss) with writes coalesced and passed through."""
    redis = RedisBackend.from_url(url)
    users = synthetic_users(1_000)
    modes = {
        "coalesced": CoalescingBackend(CircuitBreakerBackend(redis, timeout=5.0)),
        "one each": _WritesPassThrough(CircuitBreakerBackend(redis, timeout=5.0)),
    }
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    try:
        for round_ in range(rounds + 1):
            order = list(modes) if round_ % 2 else list(reversed(modes))
            for mode in order:
                result = await _storm(modes[mode], users, round_ * 2 + order.index(mode))
                if round_:  # the first round warms connections and scripts
                    results[mode].append(result)
            await redis.client.flushdb()  # pyright: ignore[reportUnknownMemberType]
    finally:
        await redis.close()
    return {
        mode: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for mode, rows in results.items()
    }


def main() -> None:
    """Print both modes and their ratio."""
    server = None if len(sys.argv) > 1 else RedisServer().start()
    url = sys.argv[1] if server is None else server.url
    try:
        figures = uvloop.run(measure(url))
    finally:
        if server is not None:
            server.close()
    for mode, (rate, cpu) in figures.items():
        print(f"{mode:>9}: {rate:8.0f} misses/s  {cpu:6.1f} µs CPU per miss ({TASKS} tasks, {MISSES} misses a round)")
    (fast, fast_cpu), (slow, slow_cpu) = figures["coalesced"], figures["one each"]
    print(f"coalesced / one each: {fast / slow:.2f}x misses/s, {fast_cpu / slow_cpu:.2f}x CPU per miss")


if __name__ == "__main__":
    main()
