"""The benchmark's settings, from `BENCH_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.procs import BenchError

__all__ = ("BENCH_DIR", "REPO", "BenchConfig")

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


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
