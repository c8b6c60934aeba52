"""The HTTP cases: which server runs each, which request it sends, what it is compared with."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.cluster import cluster_cases, cluster_specs
from bench.procs import BenchError

if TYPE_CHECKING:
    from pathlib import Path

    from bench.config import BenchConfig

__all__ = ("CASES", "FIRST_PATH", "REQUESTS", "HttpCase", "ServerSpec", "selected_cases", "server_specs")

REQUESTS = {
    "id": "GET /users/{id}",
    "uuid": "GET /users/uuid/{uuid}",
    "list": "GET /users?limit=50",
    "batch": "GET /users/batch?ids=1..10",
}
FIRST_PATH = {
    "id": "/users/1",
    "uuid": "/users/uuid/550e8400-e29b-41d4-a716-446655440001",
    "list": "/users?limit=50",
    "batch": "/users/1",  # readiness and the user-1 check; the batch itself answers a list
}


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
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
    *cluster_cases(),  # bench/cluster.py
)


def server_specs(workdir: Path, redis_url: str, cluster_url: str | None = None) -> dict[str, ServerSpec]:
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
        **cluster_specs(workdir, cluster_url, f"bench-svc-cluster-{tag}"),
    }


def selected_cases(config: BenchConfig) -> list[HttpCase]:
    if config.cases is None:
        return list(CASES)
    unknown = config.cases - {case.key for case in CASES} - {"none"}
    if unknown:
        raise BenchError(f"BENCH_CASES: unknown {sorted(unknown)}; known: {', '.join(c.key for c in CASES)}")
    return [case for case in CASES if case.key in config.cases]
