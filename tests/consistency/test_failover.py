"""No stale read after δ through a failover whose new master missed the last writes (asynchronous replication).

The replica is stopped (SIGSTOP) and its link cut while a PATCH is acknowledged and every instance's sync writes
its marker, so the write-through and the marker reach the master only; then the master is killed and the replica
promoted. The new master holds the old entry (asserted), and two app instances must not serve it once δ has passed.
Without the fence's reconnect hook (Sentinel) or the cluster's identity check (`app.cache.identity`) both fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from app.cache.entry import stored_version
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.consistency.test_faults import BOUND, _reads_after_the_bound, _settings, _version
from tests.servers import RedisClusterServer, RedisServer, SentinelServer


def replica_of(cluster: RedisClusterServer, master: RedisServer) -> RedisServer:
    """The running node that replicates `master`."""
    for node in cluster.nodes:
        if node.process is None or node is master:
            continue
        with redis.Redis(port=node.port, socket_timeout=0.5) as client:
            info = client.info("replication")
        if info["role"] == "slave" and int(info["master_port"]) == master.port:  # pyright: ignore[reportIndexIssue, reportArgumentType]
            return node
    raise RuntimeError(f"no replica of 127.0.0.1:{master.port}")


def _wait_promoted(cluster: RedisClusterServer, replica: RedisServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with redis.Redis(port=replica.port, socket_timeout=0.5) as client:
            if client.info("replication")["role"] == "master":  # pyright: ignore[reportIndexIssue]
                break
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.05)
    cluster.wait_ok(timeout)


def _wait_replicated(master: RedisServer) -> None:
    with redis.Redis(port=master.port, password=master.password, socket_timeout=5) as client:
        assert client.wait(1, 5000) == 1


@pytest.fixture
def stopped() -> Iterator[list[RedisServer]]:
    """Servers the test SIGSTOPs; they are resumed whatever happens."""
    servers: list[RedisServer] = []
    yield servers
    for server in servers:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)


def _cut_off(replica: RedisServer, master: RedisServer, stopped: list[RedisServer]) -> None:
    """Stop `replica` (SIGSTOP) and close its link on the master's side: nothing the master takes now reaches it
    (a stopped replica alone would still read what the kernel had buffered for it)."""
    assert replica.process is not None
    stopped.append(replica)
    os.kill(replica.process.pid, signal.SIGSTOP)
    with redis.Redis(port=master.port, password=master.password, socket_timeout=5) as client:
        assert client.client_kill_filter(_type="replica") == 1  # pyright: ignore[reportArgumentType]


def _resume(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


async def test_a_promoted_cluster_replica_that_missed_the_write_serves_nothing_stale(
    cluster_server: RedisClusterServer, sqlite_path: str, stopped: list[RedisServer]
) -> None:
    settings = _settings(cluster_server.url, f"sqlite:///{sqlite_path}", redis_cluster=True)
    app_a, app_b = create_app(settings), create_app(settings)
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        assert await _version(b) == 1
        assert await _version(b) == 1  # cached on the master that owns the key
        cache = app_b.state.cache_manager.cache(USER_BY_ID)
        key = cache.key(1)
        master = await asyncio.to_thread(cluster_server.node_for, key)
        # Another user on the same master: its read meets the dead node first (and refreshes the slot map), so the
        # reload that a failed read causes does not repair user 1 by chance.
        other = next(n for n in range(2, 100) if cluster_server.node_for(cache.key(n)) is master)
        replica = await asyncio.to_thread(replica_of, cluster_server, master)
        await asyncio.to_thread(_wait_replicated, master)
        await asyncio.to_thread(_cut_off, replica, master, stopped)
        response = await a.patch("/users/1", json={"first_name": "Written"})
        acked = time.monotonic()
        assert response.json()["version"] == 2
        await asyncio.sleep(BOUND)  # every instance's sync has applied the row: on the master only
        master.stop()  # SIGKILL: the write and its markers die with it
        _resume(replica)
        await asyncio.to_thread(_wait_promoted, cluster_server, replica)
        with redis.Redis(port=replica.port) as direct:
            assert stored_version(direct.get(key)) == 1  # type: ignore[arg-type]  # the new master has the old entry
        for client in (a, b):
            await _version(client, other)
        seen = await _reads_after_the_bound([a, b], acked, stale=1, seconds=2.0)
    assert seen
    assert set(seen) <= {2, "HTTP 503"}
    assert 2 in seen


async def test_a_sentinel_failover_to_a_replica_that_missed_the_write_serves_nothing_stale(
    sentinel_server: SentinelServer, sqlite_path: str, stopped: list[RedisServer]
) -> None:
    master, replica = sentinel_server.master, sentinel_server.replica
    assert master is not None
    assert replica is not None
    settings = _settings(sentinel_server.url, f"sqlite:///{sqlite_path}")
    app_a, app_b = create_app(settings), create_app(settings)
    async with concurrent_client(app_a) as a, concurrent_client(app_b) as b:
        assert await _version(b) == 1
        assert await _version(b) == 1
        key = app_b.state.cache_manager.cache(USER_BY_ID).key(1)
        await asyncio.to_thread(_wait_replicated, master)
        await asyncio.to_thread(_cut_off, replica, master, stopped)
        response = await a.patch("/users/1", json={"first_name": "Written"})
        acked = time.monotonic()
        assert response.json()["version"] == 2
        await asyncio.sleep(BOUND)
        master.stop()
        _resume(replica)
        await asyncio.to_thread(sentinel_server.failover, 30)
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(sentinel_server.current_master_port) != replica.port:
            assert time.monotonic() < deadline, "no failover"
            await asyncio.sleep(0.05)
        with redis.Redis(port=replica.port) as direct:
            assert stored_version(direct.get(key)) == 1  # type: ignore[arg-type]
        seen = await _reads_after_the_bound([a, b], acked, stale=1, seconds=2.0)
    assert seen
    assert set(seen) <= {2, "HTTP 503"}
    assert 2 in seen
