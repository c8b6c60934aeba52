"""The cost of `CACHE_SIGNING_KEY` on `Cache.get`: signed and unsigned caches timed in alternating pairs.

`python -m bench.signing_bench [REDIS_URL]` (default: a throw-away redis-server): a hit of one user, on the
memory backend (the CPU cost alone) and on Redis (what a request sees). Each round times both caches back to
back, in alternating order, so machine load affects both alike; the median of the per-round differences is
reported.
"""

from __future__ import annotations

import statistics
import sys
import time

import uvloop

from app.cache import Cache, CacheBackend, EntrySigner, MemoryBackend, RedisBackend
from app.users.models import User
from bench.fixtures import sample_users
from tests.servers import RedisServer

__all__ = ("main",)

ROUNDS = 15
CALLS = 2000


def _cache(backend: CacheBackend, signer: EntrySigner | None) -> Cache[int, User]:
    return Cache(
        backend, namespace="user", key_type=int, value_type=User, prefix="bench-sign", signer=signer,
        version_of=lambda user: user.version,
    )  # fmt: skip


async def _time(cache: Cache[int, User]) -> float:
    get = cache.get
    started = time.perf_counter_ns()
    for _ in range(CALLS):
        await get(1)
    return (time.perf_counter_ns() - started) / CALLS


async def _pairs(backend: CacheBackend) -> tuple[float, float]:
    plain = _cache(backend, None)
    signed = _cache(backend, EntrySigner([b"bench-signing-key-0123456789"]))
    user = sample_users()[0]
    for cache in (plain, signed):
        await cache.set(1, user)
        if await cache.get(1) != user:
            raise RuntimeError("the user is not cached")
    differences: list[float] = []
    bases: list[float] = []
    for round_ in range(ROUNDS):
        order = (plain, signed) if round_ % 2 else (signed, plain)
        times = {id(cache): await _time(cache) for cache in order}
        bases.append(times[id(plain)])
        differences.append(times[id(signed)] - times[id(plain)])
    return statistics.median(bases), statistics.median(differences)


async def _run(redis_url: str) -> None:
    backends: list[tuple[str, CacheBackend]] = [
        ("memory", MemoryBackend()),
        ("redis", RedisBackend.from_url(redis_url)),
    ]
    for name, backend in backends:
        base, extra = await _pairs(backend)
        print(f"{name:7s} Cache.get hit: unsigned {base / 1000:7.2f} us, signing adds {extra / 1000:+.2f} us"
              f" ({extra / base * 100:+.1f} %)")  # fmt: skip
        await backend.close()


def main() -> None:
    """Run against the Redis of `sys.argv[1]`, or a throw-away redis-server."""
    if len(sys.argv) > 1:
        uvloop.run(_run(sys.argv[1]))
        return
    server = RedisServer().start()
    try:
        uvloop.run(_run(server.url))
    finally:
        server.close()


if __name__ == "__main__":
    main()
