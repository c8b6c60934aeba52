"""A fence write that a live cluster master refuses: the sync counts it applied, and the master's old entry is never
served, because its connection was reset and the reconnect withholds that master's replies before any is handed out
(docs/consistency.md §4b).

The master refuses writes but not reads (`min-replicas-to-write` with its replica cut off): without the reset, the
read after the sync would return the version the outbox row fences, over the old connection, while trusted.
"""

from __future__ import annotations

import asyncio

import redis

from tests.consistency.test_failover import _cut_off, replica_of, stopped  # noqa: F401 - a fixture
from tests.consistency.test_fence import Row, fenced_cluster
from tests.servers import RedisClusterServer, RedisServer


async def test_a_fence_write_refused_by_a_live_master_is_never_read_back_stale(
    cluster_server: RedisClusterServer,
    stopped: list[RedisServer],  # noqa: F811 - the fixture imported above
) -> None:
    async with fenced_cluster(cluster_server.url) as (fence, _, outbox, cache):
        await cache.set(1, Row(name="old", version=1))
        assert await cache.get(1) == Row(name="old", version=1)
        master = await asyncio.to_thread(cluster_server.node_for, cache.key(1))
        replica = await asyncio.to_thread(replica_of, cluster_server, master)
        await asyncio.to_thread(_cut_off, replica, master, stopped)
        with redis.Redis(port=master.port) as direct:
            direct.config_set("min-replicas-to-write", 1)  # pyright: ignore[reportUnknownMemberType]
            assert direct.get(cache.key(1)) is not None  # it still answers reads
        epoch = fence.epoch
        outbox.add(1, 2)  # a write of version 2, committed
        assert await fence.sync()  # its marker failed on that master only, whose connection was reset
        assert fence.trusted()
        assert cache.stats.errors == 1
        assert await cache.get(1) is None  # read over a new connection: that master withheld first, never version 1
        assert fence.epoch == epoch + 1
        assert set(fence.withheld) == {f"127.0.0.1:{master.port}"}  # the other masters' keys stay trusted
        assert fence.trusted()
        assert await cache.get(1) is None  # still withheld: the old version is not served
        with redis.Redis(port=master.port) as direct:
            direct.config_set("min-replicas-to-write", 0)  # pyright: ignore[reportUnknownMemberType]
        assert await fence.sync()  # the replay lands the marker
        assert await cache.get(1) is None
        await cache.set(1, Row(name="new", version=2))
        assert await cache.get(1) == Row(name="new", version=2)
