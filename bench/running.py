"""Running the cases: the library timings, the HTTP servers and wrk against them."""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import redis

from bench.cases import FIRST_PATH, ONE_USER_MODES
from bench.config import BENCH_DIR, REPO
from bench.lib_bench import LibRow
from bench.procs import BenchError, HttpServer, child_env, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from bench.cases import HttpCase, ServerSpec
    from bench.config import BenchConfig

__all__ = (
    "CaseResult",
    "WrkRun",
    "log",
    "redis_key_notes",
    "run_http",
    "run_lib",
    "run_wrk",
    "start_servers",
    "stop_servers",
)

WRK_DIR = BENCH_DIR / "wrk"


class WrkRun(msgspec.Struct, frozen=True):
    """One wrk run, as the `done()` function of bench/wrk/users.lua reports it."""

    requests: int
    duration_us: int
    bytes: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    mean_us: float

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.status_errors + self.timeouts


def run_wrk(wrk: str, url: str, case: HttpCase, *, connections: int, threads: int, seconds: int) -> WrkRun:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_DIR / case.lua)]
    argv += [url, "--", case.mode, *case.args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return msgspec.json.decode(line.removeprefix("BENCH_JSON "), type=WrkRun)
    raise BenchError(f"wrk printed no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


@dataclass(slots=True)
class CaseResult:
    case: HttpCase
    connections: int
    runs: list[WrkRun] = field(default_factory=list[WrkRun])

    def median(self, value: Callable[[WrkRun], float]) -> float:
        return statistics.median(value(run) for run in self.runs)

    @property
    def rps(self) -> float:
        return self.median(lambda run: run.rps)

    @property
    def p50_ms(self) -> float:
        return self.median(lambda run: run.p50_us) / 1000

    @property
    def p99_ms(self) -> float:
        return self.median(lambda run: run.p99_us) / 1000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_lib(redis_url: str, workdir: Path) -> list[LibRow]:
    out = workdir / "lib.json"
    log("library cases (bench/lib_bench.py) ...")
    subprocess.run(
        [sys.executable, "-m", "bench.lib_bench", "--redis-url", redis_url, "--json", str(out)], cwd=REPO, check=True
    )
    return msgspec.json.decode(out.read_bytes(), type=list[LibRow])


def start_servers(specs: Iterable[ServerSpec], workdir: Path, cases: Sequence[HttpCase]) -> dict[str, HttpServer]:
    servers: dict[str, HttpServer] = {}
    try:
        for spec in specs:
            env = child_env({**spec.env, "PORT": str(port := free_port())}, REPO)
            servers[spec.name] = server = HttpServer(spec.name, spec.argv, env, workdir, port)
            server.start()
        for case in cases:
            body = servers[case.server].wait_ready(FIRST_PATH[case.mode])
            if case.mode in ONE_USER_MODES and msgspec.json.decode(body).get("id") != 1:
                raise BenchError(f"{case.key}: {FIRST_PATH[case.mode]} answered {body[:200]!r}, not user 1")
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: dict[str, HttpServer]) -> None:
    for server in servers.values():
        server.stop()


def run_http(
    servers: dict[str, HttpServer], cases: Sequence[HttpCase], config: BenchConfig, wrk: str
) -> dict[tuple[str, int], CaseResult]:
    results = {(case.key, c): CaseResult(case, c) for case in cases for c in config.concurrency if case.runs_at(c)}
    for round_no in range(1, config.rounds + 1):
        for case in cases:
            url = servers[case.server].base_url
            for c in filter(case.runs_at, config.concurrency):
                if config.warmup:
                    run_wrk(wrk, url, case, connections=c, threads=config.threads, seconds=config.warmup)
                run = run_wrk(wrk, url, case, connections=c, threads=config.threads, seconds=config.duration)
                results[(case.key, c)].runs.append(run)
                log(
                    f"round {round_no}/{config.rounds} {case.key:<12} c={c:<3} {run.rps:>9,.0f} req/s  "
                    f"p50 {run.p50_us / 1000:6.2f} ms  p99 {run.p99_us / 1000:6.2f} ms  errors {run.errors}"
                )
    return results


def redis_key_notes(redis_url: str, servers: dict[str, HttpServer]) -> list[str]:
    """Check that the Redis cases did put their users in Redis (a typo in a setting would hide it)."""
    notes: list[str] = []
    client = redis.Redis.from_url(redis_url)
    try:
        for name in ("baseline", "svc-redis", "svc-near", "svc-pg"):
            server = servers.get(name)
            if server is None:
                continue
            prefix = server.env.get("CACHE_PREFIX") or server.env.get("BENCH_PREFIX", "")
            if not any(True for _ in client.scan_iter(match=f"{prefix}:*", count=1000)):
                notes.append(f"WARNING: `{name}` left no keys under `{prefix}:` in Redis: it did not use Redis.")
    finally:
        client.close()
    return notes
