"""`make bench`: every benchmark case in one invocation, one report on stdout and in bench/RESULTS.md.

Starts a throw-away redis-server on a free loopback port, runs the library timings (bench/lib_bench.py)
against it, then starts every HTTP server (the ceiling, the hand-written baseline and the service in each
configuration; one worker each, access log off) and drives each case with wrk from this machine: per
round, per case, per concurrency, a warm-up then a measured run. Medians over rounds, with min-max.

Environment: BENCH_DURATION (s, default 10), BENCH_ROUNDS (3), BENCH_WARMUP (s, 2; 0 skips it),
BENCH_CONCURRENCY ("32,64"), BENCH_THREADS (wrk threads, 2), BENCH_CASES (comma-separated case keys,
default all), BENCH_LIB (0 skips the library cases), BENCH_LIB_ROUNDS, BENCH_LIB_TIME (see lib_bench),
BENCH_OUTPUT (default bench/RESULTS.md).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import redis

from bench.lib_bench import LibRow, format_lib_table
from bench.procs import BenchError, HttpServer, RedisServer, child_env, free_port, require_binary

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = ("main",)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA = BENCH_DIR / "wrk" / "users.lua"

REQUESTS = {"id": "GET /users/{id}", "uuid": "GET /users/uuid/{uuid}", "list": "GET /users?limit=50"}
FIRST_PATH = {"id": "/users/1", "uuid": "/users/uuid/550e8400-e29b-41d4-a716-446655440001", "list": "/users?limit=50"}


# -- configuration ---------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise BenchError(f"{name}: expected an integer, got {value!r}") from None


@dataclass(frozen=True)
class BenchConfig:
    duration: int
    rounds: int
    warmup: int
    concurrency: tuple[int, ...]
    threads: int
    cases: frozenset[str] | None
    lib: bool
    output: Path

    @classmethod
    def from_env(cls) -> BenchConfig:
        concurrency = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCY", "32,64").split(",") if c.strip())
        cases = os.environ.get("BENCH_CASES", "").strip()
        config = cls(
            duration=_env_int("BENCH_DURATION", 10),
            rounds=_env_int("BENCH_ROUNDS", 3),
            warmup=_env_int("BENCH_WARMUP", 2),
            concurrency=concurrency,
            threads=_env_int("BENCH_THREADS", 2),
            cases=frozenset(c.strip() for c in cases.split(",") if c.strip()) if cases else None,
            lib=os.environ.get("BENCH_LIB", "1").strip() not in {"0", "false", "no"},
            output=Path(os.environ.get("BENCH_OUTPUT", "").strip() or BENCH_DIR / "RESULTS.md"),
        )
        if config.duration < 1 or config.rounds < 1 or config.warmup < 0 or not concurrency:
            raise BenchError("BENCH_DURATION and BENCH_ROUNDS must be >= 1, BENCH_WARMUP >= 0, BENCH_CONCURRENCY set")
        if min(concurrency) < config.threads:
            raise BenchError("every BENCH_CONCURRENCY must be at least BENCH_THREADS")
        return config


# -- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class HttpCase:
    key: str
    label: str
    server: str
    mode: str
    cache_hit: bool = False
    ceiling: str = "ceiling"
    """The case this one's "x ceiling" is relative to: the ceiling on the same HTTP server."""
    baseline: str | None = "baseline"
    """The case of the "x baseline" column (the baseline runs on uvicorn only)."""
    judged: bool = True
    """Part of the targets; the granian cases (an optional server, not the issue's cases) are reported only."""


CASES = (
    HttpCase("ceiling", "ceiling: constant Struct, no I/O", "ceiling", "id"),
    HttpCase("baseline", "baseline: raw redis GET + decode", "baseline", "id"),
    HttpCase("redis-id", "service, Redis", "svc-redis", "id", cache_hit=True),
    HttpCase("redis-uuid", "service, Redis", "svc-redis", "uuid", cache_hit=True),
    HttpCase("near-id", "service, Redis + near cache", "svc-near", "id", cache_hit=True),
    HttpCase("near-uuid", "service, Redis + near cache", "svc-near", "uuid", cache_hit=True),
    HttpCase("memory-id", "service, memory backend", "svc-memory", "id", cache_hit=True),
    HttpCase("memory-uuid", "service, memory backend", "svc-memory", "uuid", cache_hit=True),
    HttpCase("miss-id", "service, cache off (SQLite)", "svc-miss", "id"),
    HttpCase("list", "service, Redis (pages are not cached)", "svc-redis", "list"),
    # SERVER=granian: the same apps on granian, each compared with the ceiling on granian.
    HttpCase("ceiling-granian", "granian: ceiling", "ceiling-granian", "id", ceiling="ceiling-granian", baseline=None),
    HttpCase(
        "redis-id-granian",
        "granian: service, Redis",
        "svc-redis-granian",
        "id",
        cache_hit=True,
        ceiling="ceiling-granian",
        baseline=None,
        judged=False,
    ),
    HttpCase(
        "near-id-granian",
        "granian: service, Redis + near cache",
        "svc-near-granian",
        "id",
        cache_hit=True,
        ceiling="ceiling-granian",
        baseline=None,
        judged=False,
    ),
)


def server_specs(workdir: Path, redis_url: str) -> dict[str, ServerSpec]:
    python = sys.executable
    tag = os.getpid()

    def service(name: str, extra: dict[str, str]) -> ServerSpec:
        (workdir / name).mkdir(parents=True, exist_ok=True)
        env = {
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "WORKERS": "1",
            "SEED_SAMPLE_USERS": "true",
            "DATABASE_URL": f"sqlite:///{workdir / name / 'users.db'}",
            "CACHE_PREFIX": f"bench-{name}-{tag}",
            **extra,
        }
        return ServerSpec(name, [python, "-m", "app"], env)

    return {
        "ceiling": ServerSpec("ceiling", [python, "-m", "bench.apps.ceiling"], {"HOST": "127.0.0.1"}),
        "baseline": ServerSpec(
            "baseline",
            [python, "-m", "bench.apps.baseline"],
            {"HOST": "127.0.0.1", "REDIS_URL": redis_url, "BENCH_PREFIX": f"bench-baseline-{tag}"},
        ),
        "svc-redis": service("svc-redis", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "false"}),
        "svc-near": service("svc-near", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "true"}),
        "svc-memory": service("svc-memory", {}),
        "svc-miss": service("svc-miss", {"CACHE_ENABLED": "false"}),
        "ceiling-granian": ServerSpec(
            "ceiling-granian", [python, "-m", "bench.apps.ceiling"], {"HOST": "127.0.0.1", "SERVER": "granian"}
        ),
        "svc-redis-granian": service(
            "svc-redis-granian", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "false", "SERVER": "granian"}
        ),
        "svc-near-granian": service(
            "svc-near-granian", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "true", "SERVER": "granian"}
        ),
    }


# -- wrk -------------------------------------------------------------------------------------------


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


def run_wrk(wrk: str, url: str, mode: str, *, connections: int, threads: int, seconds: int) -> WrkRun:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url]
    result = subprocess.run([*argv, "--", mode], capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return msgspec.json.decode(line.removeprefix("BENCH_JSON "), type=WrkRun)
    raise BenchError(f"wrk printed no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


# -- statistics and formatting ---------------------------------------------------------------------


@dataclass
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


def spread(values: Iterable[float], fmt: str) -> str:
    items = list(values)
    median = format(statistics.median(items), fmt)
    if len(items) < 2:
        return median
    return f"{median} ({format(min(items), fmt)}..{format(max(items), fmt)})"


def ratio(numerator: CaseResult | None, denominator: CaseResult | None) -> float | None:
    if numerator is None or denominator is None or not denominator.rps:
        return None
    return numerator.rps / denominator.rps


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def http_table(results: dict[tuple[str, int], CaseResult], config: BenchConfig) -> str:
    lines = [
        "| Case | Request | c | req/s | x ceiling | x baseline | p50 ms | p99 ms | p99/p50 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for connections in config.concurrency:
        for case in CASES:
            result = results.get((case.key, connections))
            if result is None or not result.runs:
                continue
            ceiling = results.get((case.ceiling, connections))
            baseline = results.get((case.baseline, connections)) if case.baseline else None
            runs = result.runs
            cells = [
                f"{case.label} `{case.key}`",
                REQUESTS[case.mode],
                str(connections),
                spread((run.rps for run in runs), ",.0f"),
                fmt_ratio(ratio(result, ceiling)),
                fmt_ratio(ratio(result, baseline)),
                spread((run.p50_us / 1000 for run in runs), ".2f"),
                spread((run.p99_us / 1000 for run in runs), ".2f"),
                f"{result.p99_ms / result.p50_ms:.1f}" if result.p50_ms else "",
                str(sum(run.errors for run in runs)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    holds: bool | None

    @property
    def verdict(self) -> str:
        return {True: "hold", False: "**does not hold**", None: "not measured"}[self.holds]


def _redis_vs_baseline(results: dict[tuple[str, int], CaseResult]) -> list[Target]:
    r32 = ratio(results.get(("redis-id", 32)), results.get(("baseline", 32)))
    r64 = ratio(results.get(("redis-id", 64)), results.get(("baseline", 64)))
    return [
        Target(
            "Redis, no near cache, `GET /users/{id}` >= 1.0x baseline req/s at c=32",
            fmt_ratio(r32) or "-",
            None if r32 is None else r32 >= 1.0,
        ),
        Target(
            "... and more than 1.0x baseline at c=64",
            f"{fmt_ratio(r64)} (c=32: {fmt_ratio(r32)})" if r64 is not None else "-",
            None if r64 is None else r64 > 1.0,
        ),
    ]


def _near_vs_ceiling(results: dict[tuple[str, int], CaseResult], config: BenchConfig) -> Target:
    ratios = {c: ratio(results.get(("near-id", c)), results.get(("ceiling", c))) for c in config.concurrency}
    known = {c: r for c, r in ratios.items() if r is not None}
    return Target(
        "Near cache on, `GET /users/{id}` >= 0.7x ceiling req/s (every c)",
        ", ".join(f"c={c}: {r:.2f}x" for c, r in known.items()) or "-",
        all(r >= 0.7 for r in known.values()) if known else None,
    )


def _tail_latency(results: dict[tuple[str, int], CaseResult]) -> Target:
    hits = [
        r for (_, c), r in results.items() if c == 32 and r.case.cache_hit and r.case.judged and r.runs and r.p50_ms
    ]
    if not hits:
        return Target("p99 < 3x p50 at c=32 on every cache-hit case (uvicorn)", "-", None)
    worst = max(hits, key=lambda r: r.p99_ms / r.p50_ms)
    failing = [r.case.key for r in hits if r.p99_ms >= 3 * r.p50_ms]
    measured = f"worst {worst.p99_ms / worst.p50_ms:.1f}x (`{worst.case.key}`)"
    if failing:
        measured += "; >= 3x on " + ", ".join(f"`{key}`" for key in failing)
    return Target("p99 < 3x p50 at c=32 on every cache-hit case (uvicorn)", measured, not failing)


def _lib_target(rows: dict[str, LibRow], key: str, name: str, limit: float) -> Target:
    """Judge the service configuration (`{key}-service`); show the breaker-only and no-breaker variants too."""
    row = rows.get(f"{key}-service")
    if row is None or row.overhead is None:
        return Target(name, "-", None)
    variants = [("breaker only", rows.get(key)), ("no breaker", rows.get(f"{key}-nobreaker"))]
    details = [f"{label} {v.overhead * 100:+.1f}%" for label, v in variants if v is not None and v.overhead is not None]
    measured = f"service config {row.overhead * 100:+.1f}%" + (f" ({', '.join(details)})" if details else "")
    return Target(name, measured, row.overhead < limit)


def evaluate_targets(
    results: dict[tuple[str, int], CaseResult], lib_rows: Sequence[LibRow], config: BenchConfig
) -> list[Target]:
    rows = {row.key: row for row in lib_rows}
    return [
        *_redis_vs_baseline(results),
        _near_vs_ceiling(results, config),
        _tail_latency(results),
        _lib_target(rows, "cache-get", "`Cache.get` over raw GET + decode < 15%", 0.15),
        _lib_target(rows, "cache-get-many", "`get_many(100)` over raw MGET + decode < 10%", 0.10),
    ]


def targets_table(targets: Sequence[Target]) -> str:
    lines = ["| Target | Measured (medians) | Result |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {t.verdict} |" for t in targets]
    return "\n".join(lines)


# -- environment -----------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (result.stdout or result.stderr).strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(wrk: str, redis_server: str) -> list[str]:
    redis_version = re.search(r"v=(\S+)", _command_output([redis_server, "--version"]))
    wrk_version = _command_output([wrk, "--version"]).splitlines()[:1]
    commit = _command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    packages = ["litestar", "redis", "hiredis", "msgspec", "uvicorn", "uvloop", "httptools"]
    versions = [f"python {platform.python_version()}"] + [
        f"{'redis-py' if name == 'redis' else name} {_version(name)}" for name in packages
    ]
    versions.append(f"redis-server {redis_version.group(1) if redis_version else 'unknown'}")
    versions.append(" ".join(wrk_version[0].split()[:2]) if wrk_version else "wrk unknown")
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; working tree at commit {commit}",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- Versions: {', '.join(versions)}",
    ]


# -- orchestration ---------------------------------------------------------------------------------


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
            if case.mode != "list" and msgspec.json.decode(body).get("id") != 1:
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
    results = {(case.key, c): CaseResult(case, c) for case in cases for c in config.concurrency}
    for round_no in range(1, config.rounds + 1):
        for case in cases:
            url = servers[case.server].base_url
            for c in config.concurrency:
                if config.warmup:
                    run_wrk(wrk, url, case.mode, connections=c, threads=config.threads, seconds=config.warmup)
                run = run_wrk(wrk, url, case.mode, connections=c, threads=config.threads, seconds=config.duration)
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
        for name in ("baseline", "svc-redis", "svc-near"):
            server = servers.get(name)
            if server is None:
                continue
            prefix = server.env.get("CACHE_PREFIX") or server.env.get("BENCH_PREFIX", "")
            if not any(True for _ in client.scan_iter(match=f"{prefix}:*", count=1000)):
                notes.append(f"WARNING: `{name}` left no keys under `{prefix}:` in Redis: it did not use Redis.")
    finally:
        client.close()
    return notes


def report(
    config: BenchConfig,
    env_lines: list[str],
    results: dict[tuple[str, int], CaseResult],
    lib_rows: list[LibRow],
    notes: list[str],
) -> str:
    parameters = (
        f"- Load: wrk, {config.threads} threads, {config.duration} s per case after a {config.warmup} s warm-up, "
        f"{config.rounds} round(s), medians with (min..max); server, redis-server and wrk share the machine "
        "(nothing pinned to cores). One worker per server (uvicorn; granian for the `*-granian` cases), "
        "access log off, gc frozen after start-up."
    )
    parts = ["# Benchmark results", "", "Written by `make bench` (bench/run.py); see bench/README.md.", ""]
    parts += [*env_lines, parameters, ""]
    if results:
        parts += ["## HTTP", "", http_table(results, config), ""]
    if lib_rows:
        parts += ["## Library (in-process, sequential calls, uvloop)", "", format_lib_table(lib_rows), ""]
    parts += ["## Targets", "", targets_table(evaluate_targets(results, lib_rows, config)), ""]
    if notes:
        parts += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(parts)


def _selected_cases(config: BenchConfig) -> list[HttpCase]:
    if config.cases is None:
        return list(CASES)
    unknown = config.cases - {case.key for case in CASES} - {"none"}
    if unknown:
        raise BenchError(f"BENCH_CASES: unknown {sorted(unknown)}; known: {', '.join(c.key for c in CASES)}")
    return [case for case in CASES if case.key in config.cases]


def bench(config: BenchConfig, workdir: Path, cases: Sequence[HttpCase], *, wrk: str, redis_server: str) -> str:
    notes: list[str] = []
    env_lines = environment(wrk, redis_server)
    server = RedisServer().start()
    log(f"throw-away redis-server at {server.url}; work directory {workdir}")
    try:
        lib_rows = run_lib(server.url, workdir) if config.lib else []
        specs = server_specs(workdir, server.url)
        needed = [specs[name] for name in dict.fromkeys(case.server for case in cases)]
        results: dict[tuple[str, int], CaseResult] = {}
        if cases:
            log(f"starting {', '.join(spec.name for spec in needed)} ...")
            started = time.monotonic()
            servers = start_servers(needed, workdir, cases)
            log(f"servers ready in {time.monotonic() - started:.1f} s")
            try:
                results = run_http(servers, cases, config, wrk)
                notes += redis_key_notes(server.url, servers)
            finally:
                stop_servers(servers)
    finally:
        server.close()
    return report(config, env_lines, results, lib_rows, notes)


def _terminate(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = BenchConfig.from_env()
        wrk = require_binary("wrk")
        redis_server = require_binary("redis-server")
        cases = _selected_cases(config)
    except BenchError as exc:
        log(f"bench: {exc}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        text = bench(config, workdir, cases, wrk=wrk, redis_server=redis_server)
    except (BenchError, subprocess.CalledProcessError) as exc:
        log(f"bench: {exc}\n(server logs kept in {workdir})")
        return 2
    config.output.write_text(text, encoding="utf-8")
    print(text)
    log(f"written to {config.output}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
