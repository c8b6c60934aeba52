"""`make bench`: every benchmark case in one invocation, one report on stdout and in a file (see `BENCH_OUTPUT`).

Starts a throw-away redis-server on a free loopback port, runs the library timings (bench/lib_bench.py)
against it, then starts every HTTP server (the ceiling, the hand-written baseline and the service in each
configuration; one worker each, access log off) and drives each case with wrk from this machine: per
round, per case, per concurrency, a warm-up then a measured run. Medians over rounds, with min-max.

Environment: BENCH_DURATION (s, default 10), BENCH_ROUNDS (3), BENCH_WARMUP (s, 2; 0 skips it),
BENCH_CONCURRENCY ("32,64"), BENCH_THREADS (wrk threads, 2), BENCH_CASES (comma-separated case keys,
default all), BENCH_LIB (0 skips the library cases), BENCH_LIB_ROUNDS, BENCH_LIB_TIME (see lib_bench),
BENCH_OUTPUT (default bench/RESULTS.md for a full run with every default, else bench/.work/RESULTS.md).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cases import POSTGRES_SERVERS, selected_cases, selected_one_shots, server_specs
from bench.cluster import CLUSTER_SERVERS, cluster_notes, running_cluster
from bench.config import COMMITTED_OUTPUT, QUICK_OUTPUT, REPO, BenchConfig
from bench.procs import BenchError, RedisServer, require_binary
from bench.reporting import environment, report
from bench.running import log, redis_key_notes, run_http, run_lib, start_servers, stop_servers
from bench.scale import ScaleResults, prepare, run_one_shots, start_postgres

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.cases import HttpCase
    from bench.running import CaseResult

__all__ = ("main",)


def bench(
    config: BenchConfig,
    workdir: Path,
    cases: Sequence[HttpCase],
    *,
    wrk: str,
    redis_server: str,
    cluster_url: str | None = None,
) -> str:
    notes: list[str] = []
    env_lines = environment(wrk, redis_server)
    one_shots = selected_one_shots(config)
    scale = ScaleResults()
    server = RedisServer().start()
    log(f"throw-away redis-server at {server.url}; work directory {workdir}")
    postgres = None
    try:
        if one_shots or any(case.server in POSTGRES_SERVERS for case in cases):
            postgres = start_postgres()
            log(f"throw-away PostgreSQL at {postgres.url}")
        lib_rows = run_lib(server.url, workdir) if config.lib else []
        specs = server_specs(workdir, server.url, postgres.url if postgres else "", cluster_url)
        needed = [specs[name] for name in dict.fromkeys(case.server for case in cases)]
        results: dict[tuple[str, int], CaseResult] = {}
        if cases:
            log(f"starting {', '.join(spec.name for spec in needed)} ...")
            started = time.monotonic()
            servers = start_servers(needed, workdir, cases)
            log(f"servers ready in {time.monotonic() - started:.1f} s")
            try:
                for seeded, name in enumerate(sorted(POSTGRES_SERVERS & servers.keys())):
                    assert postgres is not None
                    started = time.monotonic()
                    prepare(servers[name], postgres.url, seed_first=not seeded)
                    log(f"{name}: seeded and cached in {time.monotonic() - started:.1f} s")
                results = run_http(servers, cases, config, wrk)
                notes += redis_key_notes(server.url, servers) + cluster_notes(results)
            finally:
                stop_servers(servers)
        if one_shots:
            assert postgres is not None
            scale = run_one_shots(one_shots, config, workdir, server.url, postgres.url, wrk)
    finally:
        server.close()
        if postgres is not None:
            postgres.close()
    return report(config, env_lines, results, lib_rows, [*notes, *scale.notes], scale)


def _terminate(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = BenchConfig.from_env()
        wrk = require_binary("wrk")
        redis_server = require_binary("redis-server")
        cases = selected_cases(config)
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with running_cluster(any(case.server in CLUSTER_SERVERS for case in cases)) as cluster_url:
            text = bench(config, workdir, cases, wrk=wrk, redis_server=redis_server, cluster_url=cluster_url)
    except (BenchError, subprocess.CalledProcessError) as exc:
        log(f"bench: {exc}\n(server logs kept in {workdir})")
        return 2
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(text, encoding="utf-8")
    print(text)
    log(f"written to {config.output}")
    if config.output == QUICK_OUTPUT:
        log(f"(not the documented settings, so {COMMITTED_OUTPUT.relative_to(REPO)} is left as it was)")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
