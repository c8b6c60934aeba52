"""The report: the HTTP and library tables, the targets and the machine they were measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cases import CASES, NEAR_PAIRS, REQUESTS
from bench.config import REPO
from bench.lib_bench import LibRow, format_lib_table

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bench.config import BenchConfig
    from bench.running import CaseResult
    from bench.scale import ScaleResults

__all__ = ("Target", "environment", "evaluate_targets", "http_table", "report", "scale_section", "targets_table")


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
        "| Case | Request | users | c | req/s | x ceiling | x baseline | p50 ms | p99 ms | p99/p50 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
                f"{case.users:,}",
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


@dataclass(frozen=True, slots=True)
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


def _pages_vs_by_id(results: dict[tuple[str, int], CaseResult]) -> Target:
    """Issue 15: a page of 50 at a random position >= 0.3x GET by id, 100k users, back to back in each round."""
    page, by_id = results.get(("pg-page-100k", 32)), results.get(("pg-id-100k", 32))
    name = "Page of 50 at a random `after` >= 0.3x GET by id (uniform), 100k users in PostgreSQL, c=32"
    if page is None or by_id is None or not page.runs or not by_id.runs:
        return Target(name, "-", None)
    per_round = [p.rps / i.rps for p, i in zip(page.runs, by_id.runs, strict=True)]
    value = statistics.median(per_round)
    return Target(name, f"{value:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in per_round)})", value >= 0.3)


def _near_never_slower(results: dict[tuple[str, int], CaseResult]) -> list[Target]:
    """Issue 15: near cache on never slower than off at scale (req/s within 3%, the rounds' noise), and its p99
    with 100k near entries within 2x of near off."""
    targets: list[Target] = []
    for near_key, off_key in NEAR_PAIRS:
        near, off = results.get((near_key, 32)), results.get((off_key, 32))
        name = f"`{near_key}` req/s >= 0.97x `{off_key}` (near cache never slower), c=32"
        if near is None or off is None or not near.runs or not off.runs:
            targets.append(Target(name, "-", None))
            continue
        ratio = near.rps / off.rps
        targets.append(Target(name, f"{ratio:.2f}x ({near.rps:,.0f} / {off.rps:,.0f} req/s)", ratio >= 0.97))
        if near_key == "pg-near-id-100k":
            p99 = near.p99_ms / off.p99_ms
            name = "p99 with 100k near entries <= 2x near cache off (uniform over 100k), c=32"
            targets.append(Target(name, f"{p99:.2f}x ({near.p99_ms:.1f} / {off.p99_ms:.1f} ms)", p99 <= 2.0))
    return targets


def _redis_bytes(scale: ScaleResults | None) -> Target:
    name = "Redis memory per user cached through the batch path <= 450 bytes"
    if scale is None or scale.memory is None:
        return Target(name, "-", None)
    return Target(name, f"{scale.memory.batch_bytes:,.0f} bytes", scale.memory.batch_bytes <= 450)


def _by_id_bytes(scale: ScaleResults | None) -> Target:
    name = "Redis memory of a by-id entry (`GET /users/{id}` path) <= 1.2x the baseline's key, same users"
    if scale is None or scale.memory is None:
        return Target(name, "-", None)
    m = scale.memory
    ratio = m.by_id_bytes / m.baseline_bytes
    return Target(name, f"{ratio:.2f}x ({m.by_id_bytes:,.0f} / {m.baseline_bytes:,.0f} bytes)", ratio <= 1.2)


def evaluate_targets(
    results: dict[tuple[str, int], CaseResult],
    lib_rows: Sequence[LibRow],
    config: BenchConfig,
    scale: ScaleResults | None = None,
) -> list[Target]:
    rows = {row.key: row for row in lib_rows}
    return [
        *_redis_vs_baseline(results),
        _near_vs_ceiling(results, config),
        _tail_latency(results),
        _lib_target(rows, "cache-get", "`Cache.get` over raw GET + decode < 15%", 0.15),
        _lib_target(rows, "cache-get-many", "`get_many(100)` over raw MGET + decode < 10%", 0.10),
        _pages_vs_by_id(results),
        *_near_never_slower(results),
        _redis_bytes(scale),
        _by_id_bytes(scale),
    ]


def scale_section(scale: ScaleResults) -> list[str]:
    """The one-shot cases at scale (bench/scale.py): cold start and memory per entry."""
    lines: list[str] = []
    if scale.cold is not None:
        lines += [
            f"- Cold start (FLUSHDB, then wrk c=32 GET by id uniform over 100,000 users): {scale.cold.summary()}."
        ]
    if scale.memory is not None:
        m = scale.memory
        near = f"{m.near_bytes:,.0f} bytes" if m.near_bytes is not None else "not measured (see the log)"
        lines += [
            "",
            "| Memory per cached user | bytes | keys per user |",
            "|---|---|---|",
            f"| Redis `used_memory` growth, `GET /users/{{id}}` path | {m.by_id_bytes:,.0f} | {m.by_id_keys:.2f} |",
            f"| Redis `used_memory` growth, `GET /users/batch` path | {m.batch_bytes:,.0f} | {m.batch_keys:.2f} |",
            f"| Redis, the hand-written baseline's key (`SET` of the msgpack user) | {m.baseline_bytes:,.0f} | 1.00 |",
            f"| Redis, the same key with a TTL (`SET ... EX`, for reference) | {m.baseline_ex_bytes:,.0f} | 1.00 |",
            f"| Near cache, Python heap per entry (tracemalloc) | {near} | |",
        ]
    return lines


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


def report(
    config: BenchConfig,
    env_lines: list[str],
    results: dict[tuple[str, int], CaseResult],
    lib_rows: list[LibRow],
    notes: list[str],
    scale: ScaleResults | None = None,
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
    if scale is not None and (scale.cold is not None or scale.memory is not None):
        parts += ["## At scale (100,000 users in PostgreSQL)", "", *scale_section(scale), ""]
    parts += ["## Targets", "", targets_table(evaluate_targets(results, lib_rows, config, scale)), ""]
    if notes:
        parts += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(parts)
