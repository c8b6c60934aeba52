"""The near cache at scale: the service with the near cache off and on, `GET /users/{id}` over many users.

Two services (one uvicorn worker each, SQLite, one throw-away redis-server), the same database of `--users`
users, Redis warmed with every user first. For each id distribution (uniform over all users, Zipf(1.0) over
all users, 10 hot ids) each service gets a warm-up run, then `--rounds` measured wrk runs each, alternated
(off, on, on, off, ...) so both see the same machine load. Prints req/s and latency percentiles per run and
the on/off ratio of the medians.

    python -m bench.near_scale [--users 100000] [--seconds 10] [--rounds 2] [--near-max-entries 100000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

import msgspec

from bench.procs import HttpServer, RedisServer, child_env, free_port, require_binary

LUA = Path(__file__).parent / "wrk" / "near_scale.lua"
ROOT = Path(__file__).parent.parent
MODES = ("uniform", "zipf", "hot")


class WrkRun(msgspec.Struct):
    requests: int
    duration_us: int
    status_errors: int
    timeouts: int
    p50_us: float
    p99_us: float
    max_us: float

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6)


def _service(
    name: str, workdir: Path, db: Path, redis_url: str, near: bool, near_max_entries: int, root: Path
) -> HttpServer:
    port = free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "WORKERS": "1",
        "SEED_SAMPLE_USERS": "false",
        "DATABASE_URL": f"sqlite:///{db}",
        "REDIS_URL": redis_url,
        "CACHE_PREFIX": "near-scale",  # both services share the warmed entries
        "CACHE_NEAR_ENABLED": "true" if near else "false",
        "CACHE_NEAR_MAX_ENTRIES": str(near_max_entries),
        "CACHE_NEAR_MAX_BYTES": str(1 << 30),  # the entry bound decides here
    }
    return HttpServer(name, [sys.executable, "-m", "app"], child_env(env, root), workdir, port)


def _populate(db: Path, users: int) -> None:
    at = "2024-01-01T12:00:00+00:00"
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "INSERT INTO users (id, uuid, first_name, last_name, email, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (
                (n, str(uuid.UUID(int=n)), f"First{n}", f"Last{n}", f"user{n}@example.com", at, at)
                for n in range(1, users + 1)
            ),
        )


def _warm(server: HttpServer, users: int) -> None:
    """Fill Redis with every user: `GET /users/batch`, 100 ids a request."""
    for start in range(1, users + 1, 100):
        ids = ",".join(str(n) for n in range(start, min(start + 100, users + 1)))
        with urllib.request.urlopen(f"{server.base_url}/users/batch?ids={ids}", timeout=30) as response:
            response.read()


def _wrk(wrk: str, server: HttpServer, mode: str, users: int, seconds: int) -> WrkRun:
    argv = [wrk, "-t1", "-c32", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), server.base_url]
    result = subprocess.run(
        [*argv, "--", mode, str(users)], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return msgspec.json.decode(line.removeprefix("BENCH_JSON "), type=WrkRun)
    raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")


def _metrics(server: HttpServer) -> dict[str, float]:
    """Sums of the counters the comparison needs, from `/metrics`."""
    with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()

    def total(prefix: str, *labels: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith(prefix) and all(label in line for label in labels)
        )

    return {
        "near_hit": total("cache_lookups_total{", 'tier="near"', 'result="hit"'),
        "near_miss": total("cache_lookups_total{", 'tier="near"', 'result="miss"'),
        "reads": total("cache_backend_reads_total{"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--near-max-entries", type=int, default=100_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--app-root", type=Path, default=ROOT, help="the checkout whose `app` is served (before/after)")
    args = parser.parse_args()
    wrk = require_binary("wrk")
    workdir = Path(tempfile.mkdtemp(prefix="near-scale-"))
    db = workdir / "users.db"
    redis = RedisServer().start()
    servers: dict[str, HttpServer] = {}
    try:
        setup = _service(
            "setup", workdir, db, redis.url, near=False, near_max_entries=args.near_max_entries, root=args.app_root
        )
        setup.start()
        setup.wait_ready("/health/live")  # migrated
        setup.stop()
        _populate(db, args.users)
        for name, near in (("off", False), ("on", True)):
            servers[name] = _service(
                name, workdir, db, redis.url, near=near, near_max_entries=args.near_max_entries, root=args.app_root
            )
            servers[name].start()
        for server in servers.values():
            server.wait_ready("/users/1")
        _warm(servers["off"], args.users)
        print(
            f"app {args.app_root}, {args.users} users, near cache max {args.near_max_entries} entries,"
            f" wrk -t1 -c32 -d{args.seconds}s"
        )
        for mode in args.modes.split(","):
            for server in servers.values():
                _wrk(wrk, server, mode, args.users, max(3, args.seconds // 2))  # warm-up (fills the near cache)
            runs: dict[str, list[WrkRun]] = {"off": [], "on": []}
            for round_no in range(args.rounds):
                for name in ("off", "on") if round_no % 2 == 0 else ("on", "off"):
                    before = _metrics(servers[name])
                    run = _wrk(wrk, servers[name], mode, args.users, args.seconds)
                    after = _metrics(servers[name])
                    runs[name].append(run)
                    near = after["near_hit"] - before["near_hit"]
                    looked = near + after["near_miss"] - before["near_miss"]
                    print(
                        f"  {mode:8} near {name:3} {run.rate:8,.0f} req/s  p50 {run.p50_us / 1000:6.2f} ms"
                        f"  p99 {run.p99_us / 1000:7.2f} ms  max {run.max_us / 1000:7.1f} ms"
                        f"  errors {run.status_errors + run.timeouts}"
                        f"  near hits {near / looked if looked else 0:4.0%}"
                        f"  requests per MGET {run.requests / max(1.0, after['reads'] - before['reads']):5.1f}",
                        flush=True,
                    )
            rate = {name: statistics.median(run.rate for run in runs[name]) for name in runs}
            p99 = {name: statistics.median(run.p99_us for run in runs[name]) for name in runs}
            ratios = f"req/s {rate['on'] / rate['off']:.2f}x, p99 {p99['on'] / p99['off']:.2f}x"
            print(f"{mode:8} near on/off (medians): {ratios}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        redis.stop()


if __name__ == "__main__":
    main()
