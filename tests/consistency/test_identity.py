"""`ClusterIdentities` on a real cluster: a server new at an address revokes the fence, more connections do not."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import RedisCluster

from app.cache.identity import ClusterIdentities
from tests.consistency.test_failover import replica_of
from tests.servers import RedisClusterServer


class Revocations:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_each_master_revokes_once_however_many_connections_open(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    revoked = Revocations()
    identities = ClusterIdentities(revoked)
    identities.install(client)
    try:
        await client.initialize()
        masters = len(client.get_primaries())
        await asyncio.gather(*(client.set(f"k{n}", n) for n in range(150)))  # many connections per node at once
        assert revoked.count == masters  # the first connection to each master: servers not seen before
        await identities.probe_for(client)()
        await asyncio.gather(*(client.get(f"k{n}") for n in range(150)))
        assert revoked.count == masters
    finally:
        await client.aclose()


async def test_the_probe_fences_a_promotion_that_no_reader_met(cluster_server: RedisClusterServer) -> None:
    client = RedisCluster.from_url(cluster_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    revoked = Revocations()
    identities = ClusterIdentities(revoked)
    identities.install(client)
    probe = identities.probe_for(client)
    try:
        await probe()
        assert revoked.count == 3
        victim = cluster_server.masters()[0]
        replica = replica_of(cluster_server, victim)
        victim.stop()  # SIGKILL
        deadline = time.monotonic() + 30
        while revoked.count == 3:  # only the probe talks to the cluster
            assert time.monotonic() < deadline, "the promotion was not noticed"
            await probe()
            await asyncio.sleep(0.1)
        assert revoked.count == 4
        assert f"127.0.0.1:{replica.port}" in {node.name for node in client.get_primaries()}
    finally:
        await client.aclose()
