"""The benchmark's settings, from `BENCH_*` environment variables, and where its report goes.

Only a full run (every setting at its documented default) replaces the committed `bench/RESULTS.md`; a quick
look or a subset goes to the git-ignored `bench/.work/RESULTS.md`, unless `BENCH_OUTPUT` names a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.lib_bench import lib_settings
from bench.procs import BenchError

__all__ = ("BENCH_DIR", "COMMITTED_OUTPUT", "QUICK_OUTPUT", "REPO", "BenchConfig")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
COMMITTED_OUTPUT = BENCH_DIR / "RESULTS.md"
"""The report of a full run: committed, quoted by the READMEs."""
QUICK_OUTPUT = BENCH_DIR / ".work" / "RESULTS.md"
"""The report of any other run (git-ignored), so a quick look never replaces the committed results."""

_FULL_RUN = (10, 3, 2, (32, 64), 2, None, True, (7, 0.2), 180)
"""The documented defaults of (duration, rounds, warm-up, concurrency, threads, cases, lib, lib settings, cold)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise BenchError(f"{name}: expected an integer, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class BenchConfig:
    duration: int
    rounds: int
    warmup: int
    concurrency: tuple[int, ...]
    threads: int
    cases: frozenset[str] | None
    lib: bool
    cold_seconds: int
    """Longest the cold-start case waits for a 90% hit ratio."""
    full: bool
    """Every setting at its documented default: the only run whose report replaces `COMMITTED_OUTPUT`."""
    output: Path

    @classmethod
    def from_env(cls) -> BenchConfig:
        concurrency = tuple(int(c) for c in os.environ.get("BENCH_CONCURRENCY", "32,64").split(",") if c.strip())
        names = os.environ.get("BENCH_CASES", "").strip()
        duration = _env_int("BENCH_DURATION", 10)
        rounds = _env_int("BENCH_ROUNDS", 3)
        warmup = _env_int("BENCH_WARMUP", 2)
        threads = _env_int("BENCH_THREADS", 2)
        cases = frozenset(c.strip() for c in names.split(",") if c.strip()) if names else None
        lib = os.environ.get("BENCH_LIB", "1").strip() not in {"0", "false", "no"}
        cold_seconds = _env_int("BENCH_COLD_SECONDS", 180)
        full = (duration, rounds, warmup, concurrency, threads, cases, lib, lib_settings(), cold_seconds) == _FULL_RUN
        output = os.environ.get("BENCH_OUTPUT", "").strip()
        config = cls(
            duration=duration,
            rounds=rounds,
            warmup=warmup,
            concurrency=concurrency,
            threads=threads,
            cases=cases,
            lib=lib,
            cold_seconds=cold_seconds,
            full=full,
            output=Path(output) if output else COMMITTED_OUTPUT if full else QUICK_OUTPUT,
        )
        if config.duration < 1 or config.rounds < 1 or config.warmup < 0 or config.cold_seconds < 1 or not concurrency:
            raise BenchError(
                "BENCH_DURATION, BENCH_ROUNDS and BENCH_COLD_SECONDS must be >= 1, BENCH_WARMUP >= 0, "
                "BENCH_CONCURRENCY set"
            )
        if min(concurrency) < config.threads:
            raise BenchError("every BENCH_CONCURRENCY must be at least BENCH_THREADS")
        return config
