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

__all__ = (
    "CASES",
    "FIRST_PATH",
    "NEAR_PAIRS",
    "ONE_SHOT",
    "ONE_USER_MODES",
    "POSTGRES_SERVERS",
    "REQUESTS",
    "SCALE_USERS",
    "HttpCase",
    "ServerSpec",
    "selected_cases",
    "selected_one_shots",
    "server_specs",
)

REQUESTS = {
    "id": "GET /users/{id}",
    "uuid": "GET /users/uuid/{uuid}",
    "list": "GET /users?limit=50",
    "batch": "GET /users/batch?ids=1..10",
    "uniform": "GET /users/{id}, id uniform",
    "zipf": "GET /users/{id}, id Zipf(1.0)",
    "page": "GET /users?limit=50&after={random}",
}
FIRST_PATH = {
    "id": "/users/1",
    "uuid": "/users/uuid/550e8400-e29b-41d4-a716-446655440001",
    "list": "/users?limit=50",
    "batch": "/users/1",  # readiness and the user-1 check; the batch itself answers a list
    "uniform": "/users/1",
    "zipf": "/users/1",
    "page": "/users?limit=50&after=0",
}
ONE_USER_MODES = frozenset({"id", "uuid", "batch", "uniform", "zipf"})
"""Modes whose first path answers user 1 (checked at start-up)."""
SCALE_USERS = 100_000
"""Users in the PostgreSQL database of the cases at scale (`svc-pg`)."""


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
    lua: str = "users.lua"
    """The wrk script in bench/wrk/; it gets `-- mode *args`."""
    args: tuple[str, ...] = ()
    users: int = 10
    """How many users the case's requests spread over (the data-size axis of the report)."""
    concurrency: tuple[int, ...] | None = None
    """Run only at these of `BENCH_CONCURRENCY` (None: at every one)."""

    def runs_at(self, connections: int) -> bool:
        return self.concurrency is None or connections in self.concurrency


NEAR = "svc-pg-near"
"""`svc-pg` with the near cache on, holding every user (100k entries): the near-cache cases at scale."""
NEAR_PAIRS = (("pg-near-id-10", "pg-id-10"), ("pg-near-id-100k", "pg-id-100k"), ("pg-near-zipf-100k", "pg-zipf-100k"))
"""Each near-cache case at scale and the same case with the near cache off (the target: never slower)."""


def _scale(key: str, label: str, mode: str, users: int, *extra: str, server: str = "svc-pg") -> HttpCase:
    """A case on the service over PostgreSQL with `SCALE_USERS` users, every user cached (at c=32 only)."""
    return HttpCase(
        key,
        label,
        server,
        mode,
        cache_hit=mode != "page",
        lua="scale.lua",
        args=(str(users), *extra),
        users=users,
        concurrency=(32,),
        judged=False,
    )


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
    # At scale: the service over PostgreSQL holding 100,000 users, all cached in Redis (bench/scale.py seeds and
    # fills it); GET by id over 10 ids and over every user, and pages at random positions, back to back.
    # Each near-cache case right after the same case with the near cache off (`svc-pg-near`, the same database).
    _scale("pg-id-10", "100k users in PostgreSQL, Redis, 10 ids", "uniform", 10),
    _scale("pg-near-id-10", "100k users in PostgreSQL, Redis + near cache, 10 ids", "uniform", 10, server=NEAR),
    _scale("pg-id-100k", "100k users in PostgreSQL, Redis, uniform", "uniform", SCALE_USERS),
    _scale("pg-page-100k", "100k users in PostgreSQL, page of 50", "page", SCALE_USERS),
    _scale(
        "pg-near-id-100k", "100k users in PostgreSQL, Redis + near cache, uniform", "uniform", SCALE_USERS, server=NEAR
    ),
    _scale("pg-zipf-100k", "100k users in PostgreSQL, Redis, Zipf", "zipf", SCALE_USERS, "1.0"),
    _scale(
        "pg-near-zipf-100k",
        "100k users in PostgreSQL, Redis + near cache, Zipf",
        "zipf",
        SCALE_USERS,
        "1.0",
        server=NEAR,
    ),
)
ONE_SHOT = ("cold-start", "memory")
"""Cases run once after the HTTP rounds, on the PostgreSQL servers (bench/scale.py): keys for `BENCH_CASES`."""
POSTGRES_SERVERS = frozenset({"svc-pg", NEAR})


def server_specs(
    workdir: Path, redis_url: str, postgres_url: str = "", cluster_url: str | None = None
) -> dict[str, ServerSpec]:
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
        # An hour's TTL, like `svc-pg`: a full run is longer than the default 300 s, and the check that these
        # servers used Redis (after the rounds) found their entries expired.
        "svc-redis": service(
            "svc-redis", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "false", "CACHE_TTL_SECONDS": "3600"}
        ),
        "svc-near": service(
            "svc-near", {"REDIS_URL": redis_url, "CACHE_NEAR_ENABLED": "true", "CACHE_TTL_SECONDS": "3600"}
        ),
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
        "svc-pg": service(
            "svc-pg",
            {
                "DATABASE_URL": postgres_url,
                "REDIS_URL": redis_url,
                "CACHE_NEAR_ENABLED": "false",
                "CACHE_TTL_SECONDS": "3600",
            },
        ),
        NEAR: service(
            NEAR,
            {
                "DATABASE_URL": postgres_url,
                "REDIS_URL": redis_url,
                "CACHE_NEAR_ENABLED": "true",
                "CACHE_NEAR_MAX_ENTRIES": str(SCALE_USERS),
                "CACHE_NEAR_MAX_BYTES": str(512 * 1024 * 1024),  # the entry count decides: every user fits
                "CACHE_TTL_SECONDS": "3600",
            },
        ),
    }


def selected_cases(config: BenchConfig) -> list[HttpCase]:
    if config.cases is None:
        return list(CASES)
    unknown = config.cases - {case.key for case in CASES} - {"none", *ONE_SHOT}
    if unknown:
        known = ", ".join([*(c.key for c in CASES), *ONE_SHOT])
        raise BenchError(f"BENCH_CASES: unknown {sorted(unknown)}; known: {known}")
    return [case for case in CASES if case.key in config.cases]


def selected_one_shots(config: BenchConfig) -> list[str]:
    return [key for key in ONE_SHOT if config.cases is None or key in config.cases]
