"""In-process timings of the cache library against the raw code it wraps.

Each case is a loop of `n` sequential calls timed with `time.perf_counter_ns`, on uvloop like the service.
`n` is calibrated so one measurement takes about `BENCH_LIB_TIME` seconds (default 0.2); every case runs
once per round, `BENCH_LIB_ROUNDS` rounds (default 7), cases in reverse order on odd rounds. A case with a
reference ("vs") is timed side by side with it, in alternating slices (`_paired`), and reports its overhead:
the median over rounds of (its time / the reference's time in those slices) - 1.

Run alone with `python -m bench.lib_bench` (it starts its own redis-server, or uses `--redis-url`);
`bench/run.py` runs it against the throw-away server of the HTTP cases and merges the result.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

import msgspec
import uvloop
from redis.asyncio import Redis

from app.cache import Cache, CacheBackend, CacheManager, CachePolicy, CircuitBreakerBackend, MemoryBackend, RedisBackend
from app.cache.codec import ValueCodec
from app.config import Settings
from app.users.caches import USER_BY_ID
from app.users.models import User
from bench.fixtures import sample_users, synthetic_users
from bench.procs import BenchError, RedisServer, require_binary

__all__ = ("LibRow", "format_lib_table", "run_lib_bench")

T = TypeVar("T")

Op: TypeAlias = Callable[[int], Awaitable[None]]
"""A case's body: `n` calls in a loop."""

BATCH = 100
"""Keys per `get_many` / MGET."""

SERVICE = "Service config (CacheManager.from_config + USER_BY_ID, Redis)"


class LibRow(msgspec.Struct, kw_only=True):
    """The result of one library case."""

    key: str
    label: str
    group: str
    ref: str | None
    """Key of the case this one is compared with."""
    ns: list[float]
    """Nanoseconds per call, one per round."""
    ratios: list[float]
    """This case's time over the reference's, one per round (empty without a reference)."""

    @property
    def overhead(self) -> float | None:
        """Median of the per-round ratios minus one (0.10 is 10% slower than the reference)."""
        return statistics.median(self.ratios) - 1 if self.ratios else None


@dataclass(frozen=True)
class _Case:
    key: str
    label: str
    group: str
    op: Op
    ref: str | None = None


def _user_version(user: User) -> int:
    return user.version


def _typed_cache(backend: CacheBackend, prefix: str) -> Cache[int, User]:
    """A cache configured like the service's `USER_BY_ID` (versioned, same TTLs)."""
    return Cache(
        backend,
        namespace="user",
        key_type=int,
        value_type=User,
        policy=CachePolicy(ttl=300, negative_ttl=30),
        prefix=prefix,
        version_of=_user_version,
    )


async def _never(_: int) -> User | None:
    raise AssertionError("the loader runs only on a miss")


class _EmptyOutbox:
    """The outbox of a database nobody writes to: the consistency fence syncs (and trusts) as in the service."""

    async def read_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, int, str]]:
        return []

    async def prune(self, older_than: float) -> None:
        return


class _Fixture:
    """Clients, backends and caches of one run, with the users already stored."""

    def __init__(self, redis_url: str) -> None:
        self.users = sample_users() + synthetic_users(BATCH)[10:]
        self.ids = [user.id for user in self.users]
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(User)
        self.codec = ValueCodec(User)
        self.raw = Redis.from_url(redis_url)
        self.raw_keys = [f"bench-lib-raw:user:{user_id}" for user_id in self.ids]
        self.memory_raw = {key: self.encoder.encode(user) for key, user in zip(self.raw_keys, self.users, strict=True)}
        self.breaker_backend = CircuitBreakerBackend(RedisBackend.from_url(redis_url), timeout=0.1)
        self.plain_backend = RedisBackend.from_url(redis_url)
        # No multiplexed connection: reads go through redis-py's ConnectionPool, as before `MultiplexedConnection`.
        self.plain_pool_backend = RedisBackend(Redis.from_url(redis_url), owns_client=True)
        self.with_breaker = _typed_cache(self.breaker_backend, "bench-lib")
        self.without_breaker = _typed_cache(self.plain_backend, "bench-lib")
        self.plain_pool = _typed_cache(self.plain_pool_backend, "bench-lib")
        self.memory = _typed_cache(MemoryBackend(), "bench-lib")
        # Exactly what the service builds from its settings (today: coalescing + breaker + Redis), with and
        # without the near cache; whatever the lifespan adds later is measured too.
        self.managers = [
            CacheManager.from_config(
                Settings(redis_url=redis_url, cache_prefix="bench-lib-svc", cache_near_enabled=near).cache_config()
            )
            for near in (False, True)
        ]
        self.service, self.service_near = (manager.cache(USER_BY_ID) for manager in self.managers)

    async def populate(self) -> None:
        for manager in self.managers:
            if manager.fence is not None:  # the lifespan gives it the database's outbox; here an empty one
                manager.fence.reader = _EmptyOutbox()
                if not await manager.fence.sync():
                    raise BenchError("the consistency fence did not sync")
            manager.start()
        await self.raw.mset(dict(zip(self.raw_keys, (self.encoder.encode(u) for u in self.users), strict=True)))
        by_id = {user.id: user for user in self.users}
        await self.with_breaker.set_many(by_id)
        await self.service.set_many(by_id)  # its entries may differ in format from the plain caches' ones
        await self.memory.set_many(by_id)
        caches = (
            self.service,
            self.service_near,
            self.with_breaker,
            self.without_breaker,
            self.plain_pool,
            self.memory,
        )
        for cache in caches:
            found = await cache.get_many(self.ids)
            if len(found) != len(self.ids):
                raise BenchError(f"{cache!r}: {len(found)} of {len(self.ids)} users cached after set_many")

    async def close(self) -> None:
        await self.raw.aclose()
        await self.breaker_backend.close()
        await self.plain_backend.close()
        await self.plain_pool_backend.close()
        for manager in self.managers:
            await manager.close()


def _calls(fn: Callable[[T], object], items: Sequence[T]) -> Op:
    """`n` calls of `fn`, over `items` in turn."""

    async def run(n: int) -> None:
        count = len(items)
        for i in range(n):
            fn(items[i % count])

    return run


def _awaited(fn: Callable[[T], Awaitable[object]], items: Sequence[T]) -> Op:
    """`n` awaited calls of `fn`, over `items` in turn."""

    async def run(n: int) -> None:
        count = len(items)
        for i in range(n):
            await fn(items[i % count])

    return run


def _redis_cases(f: _Fixture) -> list[_Case]:
    keys10 = f.raw_keys[:10]
    ids10 = f.ids[:10]
    decode = f.decoder.decode

    async def raw_get(n: int) -> None:
        get = f.raw.get
        for i in range(n):
            decode(await get(keys10[i % 10]))  # pyright: ignore[reportArgumentType]

    def cache_get(cache: Cache[int, User]) -> Op:
        return _awaited(cache.get, ids10)

    async def get_or_load(n: int) -> None:
        load = f.service.get_or_load
        for i in range(n):
            await load(ids10[i % 10], _never)

    return [
        _Case("redis-rtt", "raw redis.asyncio GET, no decode (the round trip)", "redis", _awaited(f.raw.get, keys10)),
        _Case("raw-get", "raw redis.asyncio GET + msgpack decode", "redis", raw_get),
        _Case("cache-get-service", SERVICE + ", Cache.get", "redis", cache_get(f.service), "raw-get"),
        _Case("cache-get", "Cache.get, Redis + breaker", "redis", cache_get(f.with_breaker), "raw-get"),
        _Case("cache-get-nobreaker", "Cache.get, Redis, no breaker", "redis", cache_get(f.without_breaker), "raw-get"),
        _Case(
            "cache-get-plain-pool",
            "Cache.get, Redis, no breaker, reads through redis-py's pool (diagnostic)",
            "redis",
            cache_get(f.plain_pool),
            "raw-get",
        ),
        _Case("cache-get-or-load", SERVICE + ", get_or_load on a hit", "redis", get_or_load, "cache-get-service"),
        _Case(
            "cache-get-near",
            SERVICE + " + near cache, Cache.get (L1 hit)",
            "redis",
            cache_get(f.service_near),
            "raw-get",
        ),
    ]


def _redis_batch_cases(f: _Fixture) -> list[_Case]:
    keys100 = f.raw_keys[:BATCH]
    ids100 = f.ids[:BATCH]
    decode = f.decoder.decode

    async def raw_mget(n: int) -> None:
        mget = f.raw.mget
        for _ in range(n):
            values = await mget(keys100)
            {user_id: decode(value) for user_id, value in zip(ids100, values, strict=True) if value is not None}  # pyright: ignore[reportArgumentType]

    def cache_get_many(cache: Cache[int, User]) -> Op:
        return _awaited(cache.get_many, [ids100])

    return [
        _Case("raw-mget", f"raw MGET x{BATCH} + decode into a dict", "redis", raw_mget),
        _Case(
            "cache-get-many-service",
            f"{SERVICE}, Cache.get_many({BATCH})",
            "redis",
            cache_get_many(f.service),
            "raw-mget",
        ),
        _Case(
            "cache-get-many",
            f"Cache.get_many({BATCH}), Redis + breaker",
            "redis",
            cache_get_many(f.with_breaker),
            "raw-mget",
        ),
        _Case(
            "cache-get-many-nobreaker",
            f"Cache.get_many({BATCH}), Redis without breaker",
            "redis",
            cache_get_many(f.without_breaker),
            "raw-mget",
        ),
    ]


def _memory_cases(f: _Fixture) -> list[_Case]:
    keys10 = f.raw_keys[:10]
    ids10 = f.ids[:10]
    keys100 = f.raw_keys[:BATCH]
    ids100 = f.ids[:BATCH]
    store = f.memory_raw
    decode = f.decoder.decode

    async def raw_get(n: int) -> None:
        for i in range(n):
            decode(store[keys10[i % 10]])

    async def get_or_load(n: int) -> None:
        load = f.memory.get_or_load
        for i in range(n):
            await load(ids10[i % 10], _never)

    async def raw_many(n: int) -> None:
        for _ in range(n):
            {user_id: decode(store[key]) for user_id, key in zip(ids100, keys100, strict=True)}

    return [
        _Case("mem-raw-get", "dict lookup + msgpack decode", "memory", raw_get),
        _Case("mem-cache-get", "Cache.get, MemoryBackend", "memory", _awaited(f.memory.get, ids10), "mem-raw-get"),
        _Case("mem-get-or-load", "Cache.get_or_load on a hit, MemoryBackend", "memory", get_or_load, "mem-cache-get"),
        _Case("mem-raw-many", f"{BATCH} dict lookups + decode into a dict", "memory", raw_many),
        _Case(
            "mem-cache-get-many",
            f"Cache.get_many({BATCH}), memory",
            "memory",
            _awaited(f.memory.get_many, [ids100]),
            "mem-raw-many",
        ),
    ]


def _codec_cases(f: _Fixture) -> list[_Case]:
    users10 = f.users[:10]
    encoded10 = [f.encoder.encode(user) for user in users10]

    return [
        _Case("raw-encode", "msgspec msgpack Encoder.encode(User)", "codec", _calls(f.encoder.encode, users10)),
        _Case("codec-encode", "ValueCodec.encode(User)", "codec", _calls(f.codec.encode, users10), "raw-encode"),
        _Case("raw-decode", "msgspec msgpack Decoder(User).decode", "codec", _calls(f.decoder.decode, encoded10)),
        _Case("codec-decode", "ValueCodec.decode -> User", "codec", _calls(f.codec.decode, encoded10), "raw-decode"),
    ]


async def _timed(op: Callable[[int], Awaitable[None]], n: int) -> float:
    start = time.perf_counter_ns()
    await op(n)
    return (time.perf_counter_ns() - start) / n


PAIRED_SLICES = 8
"""A case and its reference are timed in this many alternating slices each (see `_paired`)."""


async def _paired(
    op: Callable[[int], Awaitable[None]], n: int, ref: Callable[[int], Awaitable[None]], ref_n: int
) -> tuple[float, float]:
    """Time `op` and `ref` in alternating slices (op, ref, ref, op, op, ref, ...): ns per call of each.

    Loopback round trips on a VM drift by tens of percent within seconds; timing a case and its reference
    side by side, in slices of a few tens of milliseconds, makes both see the same drift, so their ratio is
    much steadier than the ratio of two measurements taken a second apart.
    """
    op_ns = ref_ns = 0
    op_slice, ref_slice = max(1, n // PAIRED_SLICES), max(1, ref_n // PAIRED_SLICES)
    for i in range(PAIRED_SLICES):
        for first in (True, False) if i % 2 == 0 else (False, True):
            start = time.perf_counter_ns()
            await (op(op_slice) if first else ref(ref_slice))
            if first:
                op_ns += time.perf_counter_ns() - start
            else:
                ref_ns += time.perf_counter_ns() - start
    return op_ns / (op_slice * PAIRED_SLICES), ref_ns / (ref_slice * PAIRED_SLICES)


async def _calibrate(op: Callable[[int], Awaitable[None]], seconds: float) -> int:
    per_op = await _timed(op, 50)
    per_op = min(per_op, await _timed(op, 50))
    return max(100, min(2_000_000, int(seconds * 1e9 / per_op)))


async def run_lib_bench(redis_url: str, *, rounds: int, seconds: float) -> list[LibRow]:
    """Run every library case against the Redis at `redis_url`; return one row per case."""
    fixture = _Fixture(redis_url)
    try:
        await fixture.populate()
        cases = _redis_cases(fixture) + _redis_batch_cases(fixture) + _memory_cases(fixture) + _codec_cases(fixture)
        counts: dict[str, int] = {}
        for case in cases:
            counts[case.key] = await _calibrate(case.op, seconds)
            await asyncio.sleep(0.02)
        by_key = {case.key: case for case in cases}
        samples: dict[str, list[float]] = {case.key: [] for case in cases}
        ratios: dict[str, list[float]] = {case.key: [] for case in cases}
        for round_no in range(rounds):
            for case in cases if round_no % 2 == 0 else reversed(cases):
                gc.collect()
                if case.ref is None:
                    samples[case.key].append(await _timed(case.op, counts[case.key]))
                else:
                    ref = by_key[case.ref]
                    ns, ref_ns = await _paired(case.op, counts[case.key], ref.op, counts[ref.key])
                    samples[case.key].append(ns)
                    ratios[case.key].append(ns / ref_ns)
                # Let background tasks run between measurements: the near cache's invalidation listener turns
                # the near caches off when its pings go unanswered for a few seconds of busy loops.
                await asyncio.sleep(0.02)
    finally:
        await fixture.close()
    return [
        LibRow(
            key=case.key,
            label=case.label,
            group=case.group,
            ref=case.ref,
            ns=samples[case.key],
            ratios=ratios[case.key],
        )
        for case in cases
    ]


def format_duration(ns: float) -> str:
    return f"{ns:,.0f} ns" if ns < 1000 else f"{ns / 1000:,.2f} µs"


def _spread(values: list[float], fmt: Callable[[float], str]) -> str:
    if len(values) < 2:
        return fmt(statistics.median(values))
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}..{fmt(max(values))})"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def format_lib_table(rows: list[LibRow]) -> str:
    """A markdown table: time per call (median, min-max over rounds) and overhead over the reference."""
    labels = {row.key: row.label for row in rows}
    lines = [
        "| Library case | Time per call | Compared with | Overhead |",
        "|---|---|---|---|",
    ]
    for row in rows:
        versus = labels[row.ref] if row.ref else ""
        overhead = _spread(row.ratios, _percent) if row.ratios else ""
        lines.append(f"| {row.label} | {_spread(row.ns, format_duration)} | {versus} | {overhead} |")
    return "\n".join(lines)


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def lib_settings() -> tuple[int, float]:
    """`BENCH_LIB_ROUNDS` and `BENCH_LIB_TIME` (seconds per measurement)."""
    return int(_env_number("BENCH_LIB_ROUNDS", 7)), _env_number("BENCH_LIB_TIME", 0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description="Time the cache library against the raw code it wraps.")
    parser.add_argument("--redis-url", help="a Redis the benchmark may write to (default: start a throw-away one)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file as JSON")
    args = parser.parse_args()
    rounds, seconds = lib_settings()
    server = None
    try:
        url = args.redis_url
        if url is None:
            require_binary("redis-server")
            server = RedisServer().start()
            url = server.url
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows = runner.run(run_lib_bench(url, rounds=rounds, seconds=seconds))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.close()
    if args.json:
        args.json.write_bytes(msgspec.json.encode(rows))
    else:
        print(f"{rounds} rounds, ~{seconds:g} s per measurement, uvloop, sequential calls\n")
        print(format_lib_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
