"""The cases at scale: 100,000 users in a throw-away PostgreSQL, a cold start, and memory per cached user.

`make bench` starts PostgreSQL only when a case needs it (`svc-pg`, `cold-start`, `memory`). The HTTP cases at
scale (bench/cases.py, `pg-*`) run in the rounds like every other case, on `svc-pg` after `prepare` has seeded the
users and cached every one of them. The two one-shot cases run once, after the rounds, on a server of their own
whose cache lives in Redis database 1 (so flushing it leaves the other cases' keys alone):

- `cold-start`: FLUSHDB, then wrk GET by id uniform over every user, reading the service's `/metrics` every
  second: the seconds until one second's remote hit ratio reaches 90% (`BENCH_COLD_SECONDS` bounds the wait).
- `memory`: Redis `used_memory` growth per user cached through `GET /users/{id}` and through `GET /users/batch`,
  the hand-written baseline's one key per user for comparison, and the near cache's bytes per entry
  (tracemalloc, in a process of its own, through the service's cache configuration).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import msgspec
import redis

from bench.cases import SCALE_USERS, ServerSpec
from bench.config import BENCH_DIR, REPO
from bench.procs import BenchError, HttpServer, child_env, free_port
from bench.running import log
from tests.servers import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from bench.config import BenchConfig

__all__ = (
    "ColdStart",
    "Memory",
    "ScaleResults",
    "cold_start",
    "fill_cache",
    "measure_memory",
    "prepare",
    "run_one_shots",
    "seed",
    "start_postgres",
)

MEMORY_USERS = 20_000
"""Users cached for each memory measurement (the last ones). Not fewer: Redis's fixed costs (client buffers, the
scripts) come to ~135 KB, 27 bytes a user over 5,000 users, which made the `GET /users/{id}` path look dearer than
the batch path."""
NEAR_ENTRIES = 10_000
"""Entries put in the near cache for its bytes per entry."""

_SEED = """
INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at)
SELECT gen_random_uuid(), 'Bench', 'User ' || g, 'bench.user' || g || '@example.com', now(), now()
FROM generate_series(1, $1) AS g
"""
"""Generated inside PostgreSQL in one statement (100,000 rows in about a second): no rows cross the socket."""


@dataclass(frozen=True, slots=True)
class ColdStart:
    seconds_to_90: float | None
    """None: the hit ratio stayed under 90% for the whole run."""
    limit_s: int
    hit_ratio_at: dict[int, float]
    """Second -> remote hit ratio during that second."""
    rps_first_5s: float
    rps_last_5s: float
    final_ratio: float

    def summary(self) -> str:
        reached = (
            f"90% hits after {self.seconds_to_90:.0f} s"
            if self.seconds_to_90 is not None
            else f"under 90% hits for {self.limit_s} s (last second {self.final_ratio:.0%})"
        )
        marks = ", ".join(f"{s} s: {r:.0%}" for s, r in self.hit_ratio_at.items() if s in {1, 5, 10, 20, 30, 60, 90})
        return (
            f"{reached}; hit ratio {marks}; {self.rps_first_5s:,.0f} req/s in the first 5 s, "
            f"{self.rps_last_5s:,.0f} in the last 5 s"
        )


@dataclass(frozen=True, slots=True)
class Memory:
    by_id_bytes: float
    by_id_keys: float
    batch_bytes: float
    batch_keys: float
    baseline_bytes: float
    baseline_ex_bytes: float
    """The baseline's key written with a TTL (`SET ... EX`): Redis keeps each TTL in a second table."""
    near_bytes: float | None


@dataclass(slots=True)
class ScaleResults:
    cold: ColdStart | None = None
    memory: Memory | None = None
    notes: list[str] = field(default_factory=list[str])


def start_postgres() -> PostgresServer:
    try:
        return PostgresServer.create().start()
    except RuntimeError as exc:
        raise BenchError(f"the cases at scale need PostgreSQL's binaries: {exc}") from None


async def seed(url: str, users: int) -> None:
    """Add synthetic users until the table holds `users` (the service seeded ids 1-10 itself)."""
    conn = await asyncpg.connect(url)
    try:
        missing = users - await conn.fetchval("SELECT count(*) FROM users")
        if missing > 0:
            await conn.execute(_SEED, missing)
        await conn.execute("ANALYZE users")
    finally:
        await conn.close()


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise BenchError(f"GET {path} answered {response.status}: {body[:200]!r}")
    return body


def _each(base_url: str, paths: list[str], workers: int = 4) -> list[bytes]:
    """GET every path over `workers` keep-alive connections; the bodies (in no particular order)."""
    host, _, port = base_url.removeprefix("http://").partition(":")

    def run(chunk: list[str]) -> list[bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            return [_get(conn, path) for path in chunk]
        finally:
            conn.close()

    with ThreadPoolExecutor(workers) as pool:
        return [body for bodies in pool.map(run, [paths[n::workers] for n in range(workers)]) for body in bodies]


def _batches(first: int, count: int) -> list[str]:
    ids = range(first, first + count)
    return ["/users/batch?ids=" + ",".join(map(str, ids[n : n + 100])) for n in range(0, count, 100)]


def fill_cache(base_url: str, users: int) -> None:
    """Cache every user (`/users/batch`, 100 ids a request)."""
    _each(base_url, _batches(1, users))


def prepare(server: HttpServer, postgres_url: str, *, seed_first: bool = True) -> None:
    """Seed `SCALE_USERS` users (once per database) and cache them all, so the `pg-*` cases are all hits."""
    if seed_first:
        asyncio.run(seed(postgres_url, SCALE_USERS))
    fill_cache(server.base_url, SCALE_USERS)


def _one_shot_server(workdir: Path, redis_url: str, postgres_url: str) -> HttpServer:
    port = free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "WORKERS": "1",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": _db1(redis_url),
        "CACHE_NEAR_ENABLED": "false",
        "CACHE_TTL_SECONDS": "3600",
        # The default prefix: the memory case measures the keys a deployment writes (a longer prefix would cost
        # ~8 bytes a key more; the server's cache is alone in database 1 of the benchmark's own Redis).
        "CACHE_PREFIX": "cache",
    }
    spec = ServerSpec("svc-pg-cold", [sys.executable, "-m", "app"], env)
    (workdir / spec.name).mkdir(parents=True, exist_ok=True)
    return HttpServer(spec.name, spec.argv, child_env(spec.env, REPO), workdir, port)


def _db1(redis_url: str) -> str:
    return re.sub(r"/\d*$", "", redis_url) + "/1"


def _remote_lookups(base_url: str) -> tuple[float, float]:
    """(hits, misses) of the by-id cache's remote tier, from `/metrics` (labels in any order)."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    hits = misses = 0.0
    for line in text.splitlines():
        if not line.startswith("cache_lookups_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
        if labels.get("cache") != "user" or labels.get("tier") != "remote":
            continue
        value = float(line.rpartition(" ")[2])
        if labels.get("result") == "hit":
            hits += value
        elif labels.get("result") in {"miss", "negative_hit"}:
            misses += value
    return hits, misses


def cold_start(wrk: str, server: HttpServer, redis_url: str, *, seconds: int, threads: int) -> ColdStart:
    """FLUSHDB, then uniform GET by id over every user until one second's hit ratio is >= 90% (or `seconds`)."""
    with redis.Redis.from_url(_db1(redis_url)) as client:
        client.flushdb()
    script = str(BENCH_DIR / "wrk" / "scale.lua")
    argv = [wrk, f"-t{threads}", "-c32", f"-d{seconds}s", "--timeout", "5s", "-s", script, server.base_url]
    process = subprocess.Popen([*argv, "--", "uniform", str(SCALE_USERS)], stdout=subprocess.DEVNULL)
    ratios: dict[int, float] = {}
    rates: dict[int, float] = {}
    reached: float | None = None
    started = time.monotonic()
    before = _remote_lookups(server.base_url)
    try:
        for second in range(1, seconds + 1):
            time.sleep(max(0.0, started + second - time.monotonic()))
            now = _remote_lookups(server.base_url)
            hits, misses = now[0] - before[0], now[1] - before[1]
            before = now
            ratios[second] = hits / (hits + misses) if hits + misses else 0.0
            rates[second] = hits + misses
            if ratios[second] >= 0.9:
                reached = time.monotonic() - started
                break
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    last = max(ratios)
    return ColdStart(
        seconds_to_90=reached,
        limit_s=seconds,
        hit_ratio_at=ratios,
        rps_first_5s=sum(rates.get(s, 0) for s in range(1, 6)) / min(5, last),
        rps_last_5s=sum(rates[s] for s in range(max(1, last - 4), last + 1)) / min(5, last),
        final_ratio=ratios[last],
    )


def _redis_growth(client: redis.Redis, fill: Callable[[], object], users: int) -> tuple[float, float]:
    """(`used_memory` growth, new keys) per user of what `fill` caches, from an empty database 1."""
    client.flushdb()
    time.sleep(0.2)
    memory, keys = int(client.info("memory")["used_memory"]), int(client.dbsize())
    fill()
    return (int(client.info("memory")["used_memory"]) - memory) / users, (int(client.dbsize()) - keys) / users


def measure_memory(server: HttpServer, redis_url: str) -> Memory:
    """Bytes per user in Redis through each read path, the baseline's key, and the near cache's entry."""
    first = SCALE_USERS - MEMORY_USERS + 1
    from app.users.models import UserBatch  # noqa: PLC0415 - the service's models, only here

    with redis.Redis.from_url(_db1(redis_url)) as client:
        by_id = _redis_growth(
            client, lambda: _each(server.base_url, [f"/users/{n}" for n in range(first, SCALE_USERS + 1)]), MEMORY_USERS
        )
        bodies: list[bytes] = []
        batch = _redis_growth(
            client, lambda: bodies.extend(_each(server.base_url, _batches(first, MEMORY_USERS))), MEMORY_USERS
        )
        # The baseline caches the same users (the rows in PostgreSQL, as the service returned them): their sizes
        # decide the allocator's size class of each value, so other users would not compare like with like.
        decode = msgspec.json.Decoder(UserBatch).decode
        values = {
            f"bench-baseline:user:{user.id}": msgspec.msgpack.encode(user)
            for body in bodies
            for user in decode(body).users
        }
        baseline = _redis_growth(client, lambda: client.mset(values), MEMORY_USERS)

        def with_ttl() -> None:
            with client.pipeline(transaction=False) as pipe:
                for key, value in values.items():
                    pipe.set(key, value, ex=3600)
                pipe.execute()

        baseline_ex = _redis_growth(client, with_ttl, MEMORY_USERS)
        client.flushdb()
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale", "near-memory", _db1(redis_url)],
        cwd=REPO,
        env=child_env({}, REPO),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    near = json.loads(result.stdout)["bytes_per_entry"] if result.returncode == 0 else None
    if near is None:
        log(f"memory: the near cache measurement failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return Memory(by_id[0], by_id[1], batch[0], batch[1], baseline[0], baseline_ex[0], near)


def run_one_shots(
    keys: Sequence[str], config: BenchConfig, workdir: Path, redis_url: str, postgres_url: str, wrk: str
) -> ScaleResults:
    """Run the selected one-shot cases (`cold-start`, `memory`) on a server of their own."""
    results = ScaleResults()
    server = _one_shot_server(workdir, redis_url, postgres_url)
    server.start()
    try:
        server.wait_ready("/health/ready")
        asyncio.run(seed(postgres_url, SCALE_USERS))
        if "cold-start" in keys:
            log(f"cold-start: FLUSHDB, then GET by id uniform over {SCALE_USERS:,} users")
            results.cold = cold_start(wrk, server, redis_url, seconds=config.cold_seconds, threads=config.threads)
            log(f"cold-start: {results.cold.summary()}")
        if "memory" in keys:
            log("memory: Redis used_memory growth per cached user; near cache bytes per entry ...")
            results.memory = measure_memory(server, redis_url)
            log(f"memory: {results.memory}")
            if results.memory.near_bytes is None:
                results.notes.append("WARNING: the near cache's bytes per entry were not measured (see the log).")
    finally:
        server.stop()
    return results


async def _near_bytes_per_entry(redis_url: str) -> float:
    """Python heap growth per near-cache entry: `NEAR_ENTRIES` users read once through the service's cache."""
    from app.cache import CacheManager  # noqa: PLC0415 - only in this child process
    from app.config import Settings  # noqa: PLC0415
    from app.users.caches import USER_BY_ID  # noqa: PLC0415
    from bench.fixtures import synthetic_users  # noqa: PLC0415
    from bench.lib_bench import _EmptyOutbox  # noqa: PLC0415  # pyright: ignore[reportPrivateUsage]

    def manager(near: bool) -> CacheManager:
        settings = Settings(
            redis_url=redis_url,
            cache_prefix="bench-near-memory",
            cache_near_enabled=near,
            cache_near_max_entries=NEAR_ENTRIES,
            cache_near_ttl_seconds=600,
        )
        return CacheManager.from_config(settings.cache_config())

    # One manager writes the users to Redis, the other reads them into its near cache (decoded from Redis, as in
    # the service; a write through the reader could leave the caller's objects in its near cache instead).
    writer, reader = manager(near=False), manager(near=True)
    for each in (writer, reader):
        if each.fence is not None:
            each.fence.reader = _EmptyOutbox()
            await each.fence.sync()
        each.start()
    try:
        await writer.cache(USER_BY_ID).set_many({user.id: user for user in synthetic_users(NEAR_ENTRIES)})
        cache = reader.cache(USER_BY_ID)
        await cache.get(1)  # warm the code paths before measuring
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2):  # twice: an admission policy may keep a key out until it is seen again
            for user_id in range(2, NEAR_ENTRIES + 1):
                await cache.get(user_id)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return grown / (NEAR_ENTRIES - 1)
    finally:
        await writer.close()
        await reader.close()


if __name__ == "__main__" and sys.argv[1:2] == ["near-memory"]:
    print(json.dumps({"bytes_per_entry": asyncio.run(_near_bytes_per_entry(sys.argv[2]))}))
