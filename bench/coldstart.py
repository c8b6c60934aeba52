"""Cold start: time to a 90% hit ratio from an empty Redis, uniform GET by id over 100,000 users.

Starts a throw-away PostgreSQL and redis-server, seeds the users (one `generate_series` insert), then for each
variant serves `python -m app` (one uvicorn worker) from a checkout, empties Redis, and runs wrk (uniform random
ids, `bench/wrk/pages.lua` mode `id`) while sampling `/metrics` and the CPU time of the app, PostgreSQL and Redis
every second: req/s, the hit ratio of that second (`cache_hits_total` over hits plus misses of cache `user`) and
CPU milliseconds per request of each process. Prints one line per second and, per variant, the seconds to 90%.

Variants: `this` (this checkout), `warm` (this checkout with `CACHE_WARMUP_ENTRIES=<users>`), and with
`--before PATH` the same run of another checkout (say a worktree of `main`), first.

Usage: python -m bench.coldstart [--users 100000] [--seconds 240] [--connections 32] [--before /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

from bench.pages import _cpu_seconds, _postgres_pids  # pyright: ignore[reportPrivateUsage]
from bench.procs import HttpServer, RedisServer, child_env, free_port, require_binary
from bench.scale import seed
from tests.servers import PostgresServer

__all__ = ("main", "time_to")

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk" / "pages.lua"
_LOOKUP = re.compile(r'^cache_lookups_total\{cache="user",result="(hit|miss)",tier="remote"\} (\S+)$')
_REQUESTS = re.compile(r"^http_requests_total\{.*\} (\S+)$")


def _counters(base_url: str) -> tuple[float, float, float]:
    """Hits and misses of cache `user`, and HTTP requests so far."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    hits = misses = requests = 0.0
    for line in text.splitlines():
        if (lookup := _LOOKUP.match(line)) is not None:
            if lookup.group(1) == "hit":
                hits = float(lookup.group(2))
            else:
                misses = float(lookup.group(2))
        elif (served := _REQUESTS.match(line)) is not None:
            requests += float(served.group(1))
    return hits, misses, requests


def time_to(samples: list[dict[str, float]], ratio: float = 0.9) -> float | None:
    """Seconds from the start of the load to the first second whose hit ratio reached `ratio`."""
    return next((sample["t"] for sample in samples if sample["hit_ratio"] >= ratio), None)


def _server(name: str, root: Path, extra: dict[str, str], postgres: PostgresServer, redis_url: str) -> HttpServer:
    port = free_port()
    env = child_env(
        {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "CACHE_TTL_SECONDS": "3600",
            **extra,
        },
        root,
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-coldstart-{name}-"))
    return HttpServer(name, [sys.executable, "-m", "app"], env, workdir, port)


def _run(
    name: str,
    root: Path,
    extra: dict[str, str],
    postgres: PostgresServer,
    redis_server: RedisServer,
    args: argparse.Namespace,
) -> list[dict[str, float]]:
    wrk = require_binary("wrk")
    server = _server(name, root, extra, postgres, redis_server.url)
    redis.Redis.from_url(redis_server.url).flushall()
    samples: list[dict[str, float]] = []
    try:
        server.start()
        server.wait_ready("/health/ready")
        assert server.process is not None
        assert redis_server.process is not None
        app_pid, redis_pid = server.process.pid, redis_server.process.pid
        pids = {"app": lambda: [app_pid], "postgres": lambda: _postgres_pids(postgres), "redis": lambda: [redis_pid]}
        argv = [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "5s", "-s", str(LUA)]
        load = subprocess.Popen(
            [*argv, server.base_url, "--", "id", str(args.users)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started = time.monotonic()
        last = _counters(server.base_url)
        cpu = {key: sum(map(_cpu_seconds, listed())) for key, listed in pids.items()}  # PostgreSQL: its backends now
        while load.poll() is None and time.monotonic() - started < args.seconds:
            time.sleep(1.0)
            now = _counters(server.base_url)
            cpu_now = {key: sum(map(_cpu_seconds, listed())) for key, listed in pids.items()}
            hits, misses, requests = (b - a for a, b in zip(last, now, strict=True))
            requests -= 1  # the /metrics request itself
            sample = {
                "t": round(time.monotonic() - started),
                "rps": requests,
                "hit_ratio": hits / (hits + misses) if hits + misses else 0.0,
                **{f"{key}_ms": (cpu_now[key] - cpu[key]) * 1000 / max(requests, 1) for key in pids},
            }
            samples.append(sample)
            print(
                f"{name:>6} t={sample['t']:4.0f}s {sample['rps']:6.0f} req/s  hits {sample['hit_ratio']:6.1%}"
                f"  CPU ms/request: app {sample['app_ms']:.3f} postgres {sample['postgres_ms']:.3f}"
                f" redis {sample['redis_ms']:.3f}",
                flush=True,
            )
            last, cpu = now, cpu_now
            if sample["hit_ratio"] >= args.stop_at:
                break
        load.kill()
        load.wait()
    finally:
        server.stop()
    return samples


def main() -> None:
    """Run the variants and print the seconds each took to a 90% hit ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=240)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--before", type=Path, help="another checkout to measure first (e.g. a worktree of main)")
    parser.add_argument("--variants", default="this,warm", help="which of before, this, warm (comma-separated)")
    parser.add_argument("--stop-at", type=float, default=0.95, help="end a variant once a second reaches this ratio")
    args = parser.parse_args()
    postgres = PostgresServer.create().start()
    redis_server = RedisServer().start()
    variants: dict[str, tuple[Path, dict[str, str]]] = {
        "this": (ROOT, {}),
        "warm": (ROOT, {"CACHE_WARMUP_ENTRIES": str(args.users)}),
    }
    if args.before is not None:
        variants = {"before": (args.before.resolve(), {}), **variants}
    chosen = [name for name in variants if name in args.variants.split(",") or (name == "before" and args.before)]
    results: dict[str, float | None] = {}
    try:
        seeder = _server("seed", ROOT, {}, postgres, redis_server.url)  # its start-up creates the tables
        try:
            seeder.start()
            seeder.wait_ready("/health/ready")
            asyncio.run(seed(postgres.url, args.users))
        finally:
            seeder.stop()
        for name in chosen:
            root, extra = variants[name]
            results[name] = time_to(_run(name, root, extra, postgres, redis_server, args))
    finally:
        redis_server.stop()
        postgres.stop()
    for name, seconds in results.items():
        shown = "not within the run" if seconds is None else f"{seconds:.0f} s"
        print(f"{name}: 90% hits after {shown} ({args.users:,} users, uniform, wrk -t1 -c{args.connections})")


if __name__ == "__main__":
    main()
