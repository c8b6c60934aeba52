"""Trust per cluster master: a master whose connection (re)opens is withheld until a replay of the outbox that
started after its connect has ended; the keys of the other masters stay trusted and hit (docs/consistency.md §4b).

With the one global trust of before (`on_node_connect` wired to `revoke`), every key missed while the replay ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.cache.fence import Invalidation
from tests.consistency.test_fence import Row, fenced_cluster


async def test_a_reconnected_master_is_withheld_while_the_other_masters_keys_keep_hitting(
    redis_cluster_url: str,
) -> None:
    async with fenced_cluster(redis_cluster_url) as (fence, cluster, outbox, cache):
        rows = {n: Row(name=f"row{n}", version=1) for n in range(1, 31)}
        await cache.set_many(rows)
        owner = {n: cluster.owner(cache.key(n)) for n in rows}
        address = owner[1]
        assert address is not None
        mine = [n for n in rows if owner[n] == address]
        others = [n for n in rows if owner[n] != address]
        assert others
        assert await cache.get_many(rows) == rows
        outbox.add(others[0], 1)  # a row to replay (of the version cached: it changes nothing)

        replaying = asyncio.Event()
        release = asyncio.Event()
        read_after = outbox.read_after

        async def held_replay(after_id: int, limit: int) -> Sequence[Invalidation]:
            if after_id == 0:  # a replay of the whole outbox
                replaying.set()
                await release.wait()
            return await read_after(after_id, limit)

        outbox.read_after = held_replay  # type: ignore[method-assign]
        node = cluster.nodes[address].inner
        node.connection.reset()  # type: ignore[attr-defined] - as after a failed fence write, or a dropped link
        assert await cache.get_many(mine) == {}  # read over the new connection: withheld before its replies
        sync = asyncio.create_task(fence.sync())
        await replaying.wait()
        # The replay is held back: the reconnected master's keys miss, every other master's keys hit.
        assert await cache.get_many(rows) == {n: rows[n] for n in others}
        assert await cache.get(others[-1]) == rows[others[-1]]
        assert await cache.get(mine[0]) is None
        assert fence.trusted()
        assert set(fence.withheld) == {address}
        release.set()
        assert await sync
        assert fence.withheld == {}
        assert await cache.get_many(rows) == rows
