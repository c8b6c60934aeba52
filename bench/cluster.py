"""The Redis Cluster cases: the service on a 6-node loopback cluster next to the same service on standalone Redis.

`cluster-id` / `cluster-batch` run the service (near cache off) against a throw-away cluster of 3 masters and
3 replicas (`tests.servers.RedisClusterServer`); `redis-batch` is the standalone service on the batch request,
`redis-id` (bench.cases) the standalone one on GET by id. The batch is `GET /users/batch?ids=1,...,10`
(bench/wrk/users.lua, mode `batch`). Every round runs the cases one after the other, so
each cluster figure is compared with a standalone one measured minutes apart, under the same load.

Only `cluster_notes` knows the targets: GET by id >= 0.9x standalone, a batch of 10 >= 0.85x.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tests.servers import RedisClusterServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from bench.cases import HttpCase, ServerSpec
    from bench.running import CaseResult

__all__ = ("CLUSTER_SERVERS", "cluster_cases", "cluster_notes", "cluster_specs", "running_cluster")

CLUSTER_SERVERS = frozenset({"svc-cluster"})
"""The servers that need the cluster."""

_TARGETS = (("cluster-id", "redis-id", "GET /users/{id}", 0.9), ("cluster-batch", "redis-batch", "batch of 10", 0.85))


def cluster_cases() -> tuple[HttpCase, ...]:
    """The cases (bench.cases appends them to its list while it is being imported, after `HttpCase`)."""
    from bench.cases import HttpCase  # noqa: PLC0415 - bench.cases imports this module

    cluster = "service, Redis Cluster (6 nodes)"
    return (  # judged by `cluster_notes` only, not by the report's other targets
        HttpCase("redis-batch", "service, Redis", "svc-redis", "batch", cache_hit=True, judged=False),
        HttpCase("cluster-id", cluster, "svc-cluster", "id", cache_hit=True, judged=False),
        HttpCase("cluster-batch", cluster, "svc-cluster", "batch", cache_hit=True, judged=False),
    )


def cluster_specs(workdir: Path, cluster_url: str | None, prefix: str) -> dict[str, ServerSpec]:
    """The service on the cluster (near cache off, as `svc-redis`); none without a cluster."""
    from bench.cases import ServerSpec  # noqa: PLC0415 - bench.cases imports this module

    if cluster_url is None:
        return {}
    (workdir / "svc-cluster").mkdir(parents=True, exist_ok=True)
    env = {
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "WORKERS": "1",
        "SEED_SAMPLE_USERS": "true",
        "DATABASE_URL": f"sqlite:///{workdir / 'svc-cluster' / 'users.db'}",
        "CACHE_PREFIX": prefix,
        "REDIS_URL": cluster_url,
        "REDIS_CLUSTER": "true",
        "CACHE_NEAR_ENABLED": "false",
    }
    return {"svc-cluster": ServerSpec("svc-cluster", [sys.executable, "-m", "app"], env)}


@contextmanager
def running_cluster(needed: bool) -> Iterator[str | None]:
    """A throw-away 6-node cluster on free loopback ports while the block runs (its URL), if `needed`."""
    if not needed:
        yield None
        return
    print("starting a 6-node Redis Cluster ...", file=sys.stderr, flush=True)
    cluster = RedisClusterServer().start()
    try:
        yield cluster.url
    finally:
        cluster.close()


def cluster_notes(results: dict[tuple[str, int], CaseResult]) -> list[str]:
    """One line per concurrency and target: cluster req/s over standalone req/s, and whether it holds."""
    notes: list[str] = []
    for cluster_key, standalone_key, what, target in _TARGETS:
        for (key, connections), result in sorted(results.items()):
            if key != cluster_key:
                continue
            standalone = results.get((standalone_key, connections))
            if standalone is None or not standalone.rps:
                continue
            value = result.rps / standalone.rps
            verdict = "holds" if value >= target else "**does not hold**"
            notes.append(
                f"Cluster {what}, c={connections}: {value:.2f}x standalone "
                f"(target >= {target}x: {verdict}); medians of the alternated rounds."
            )
    return notes
