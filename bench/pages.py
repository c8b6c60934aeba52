"""Pages at scale, keyset and offset: `GET /users?limit=50&after|offset=<random>` against `GET /users/{random id}`.

`make bench` measures the keyset page (`pg-page-100k` against `pg-id-100k`); this script adds the offset page and the
CPU each request costs the app and PostgreSQL, for looking into a page's cost.

Starts a throw-away PostgreSQL (tests/servers.py `PostgresServer`) and redis-server, serves `python -m app` (one
uvicorn worker), seeds the users, fills the cache with every user (so GET by id is all hits, as in issue 15), then
alternates wrk runs of the three cases round by round, so a machine that others load slows them alike. The offset
path is measured for contrast. Prints each round and the median ratios to GET by id.

Usage: uv run --frozen python -m bench.pages [--users 100000] [--rounds 3] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.procs import HttpServer, RedisServer, child_env, free_port, require_binary
from bench.scale import fill_cache, seed
from tests.servers import PostgresServer

__all__ = ("main",)

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk" / "pages.lua"
MODES = ("id", "after", "offset")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids(postgres: PostgresServer) -> list[int]:
    """The postmaster and its children (the backends serving the pool)."""
    postmaster = int((postgres.datadir / "postmaster.pid").read_text().split()[0])
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return [postmaster, *children]


def _wrk(wrk: str, base_url: str, mode: str, users: int, seconds: int, connections: int) -> dict[str, float]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), base_url]
    result = subprocess.run(
        [*argv, "--", mode, str(users)], capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON "))
    stats = json.loads(line.removeprefix("BENCH_JSON "))
    return {"rps": stats["requests"] / (stats["duration_us"] / 1e6), "p99_ms": stats["p99_us"] / 1000, **stats}


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    wrk = require_binary("wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    postgres = PostgresServer.create().start()
    redis = RedisServer().start()
    port = free_port()
    env = child_env(
        {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "CACHE_TTL_SECONDS": "3600",
        },
        ROOT,
    )
    server = HttpServer("app", [sys.executable, "-m", "app"], env, workdir, port)
    try:
        server.start()
        server.wait_ready("/health/ready")
        asyncio.run(seed(postgres.url, args.users))
        fill_cache(server.base_url, args.users)
        _wrk(wrk, server.base_url, "after", args.users, 2, args.connections)  # warm-up: connections, plans
        rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for n in range(args.rounds):
            for mode in MODES:
                assert server.process is not None
                pg_pids = _postgres_pids(postgres)
                app_before = _cpu_seconds(server.process.pid)
                pg_before = sum(map(_cpu_seconds, pg_pids))
                result = _wrk(wrk, server.base_url, mode, args.users, args.seconds, args.connections)
                app_cpu = (_cpu_seconds(server.process.pid) - app_before) / result["requests"] * 1000
                pg_cpu = (sum(map(_cpu_seconds, pg_pids)) - pg_before) / result["requests"] * 1000
                rounds[mode].append(result)
                print(
                    f"round {n + 1} {mode:>6}: {result['rps']:8.0f} req/s  p99 {result['p99_ms']:6.1f} ms"
                    f"  errors {result['errors']:.0f}  CPU per request: app {app_cpu:.2f} ms, PostgreSQL {pg_cpu:.2f} ms",  # noqa: E501
                    flush=True,
                )
            by_id = rounds["id"][-1]["rps"]
            print(
                f"round {n + 1} ratios: after/id {rounds['after'][-1]['rps'] / by_id:.2f}"
                f"  offset/id {rounds['offset'][-1]['rps'] / by_id:.2f}",
                flush=True,
            )
        ratios = {
            mode: statistics.median(r["rps"] / i["rps"] for r, i in zip(rounds[mode], rounds["id"], strict=True))
            for mode in ("after", "offset")
        }
        medians = {mode: statistics.median(r["rps"] for r in rounds[mode]) for mode in MODES}
        print(
            f"{args.users} users, wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds} s: median req/s "
            + ", ".join(f"{mode} {medians[mode]:.0f}" for mode in MODES)
            + f"; median ratio after/id {ratios['after']:.2f}, offset/id {ratios['offset']:.2f}"
        )
    finally:
        server.stop()
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
