"""An idle instance's invalidation listener on a Redis Cluster: after the master carrying its subscription dies, it
is subscribed again within 2 s of the replica's promotion (issue 14), with no traffic to help it.

`kill` is a SIGKILL (the kernel closes the connection: the listener hears it at once); `stall` is a SIGSTOP, a
master that vanishes without closing anything (a host that hangs or is cut off): only the pings can tell.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
import redis

from app.cache import CacheManager
from app.cache.config import CacheConfig
from tests.consistency.test_failover import replica_of
from tests.consistency.test_fence import Outbox
from tests.servers import RedisClusterServer, RedisServer

LIMIT = 2.0
"""Seconds from the promotion to the listener subscribed again (issue 14)."""


def _promoted_at(replica: RedisServer, done: threading.Event, timeout: float = 30.0) -> float:
    """Poll `replica`'s ROLE every 5 ms until it is a master; return when (`time.monotonic()`)."""
    deadline = time.monotonic() + timeout
    with redis.Redis(port=replica.port, socket_timeout=0.5) as client:
        while not done.is_set():
            role: list[object] = client.execute_command("ROLE")  # pyright: ignore[reportAssignmentType]
            now = time.monotonic()
            if role[0] in (b"master", "master"):
                return now
            assert now < deadline, "the replica was never promoted"
            time.sleep(0.005)
    raise AssertionError("stopped")


@pytest.mark.parametrize("fault", ["kill", "stall"])
async def test_an_idle_instance_resubscribes_within_2_s_of_the_promotion(
    cluster_server: RedisClusterServer, fault: str
) -> None:
    # An instance as the application builds it (δ = 1 s: pings every 250 ms), its fence syncing, no requests.
    manager = CacheManager.from_config(
        CacheConfig(url=cluster_server.url, cluster=True, near=True, consistency_bound=1.0)
    )
    bus = manager.bus
    assert bus is not None
    assert manager.fence is not None
    manager.fence.reader = Outbox()
    transitions: list[tuple[float, str]] = []
    done = threading.Event()
    stalled: int | None = None
    try:
        manager.start()
        async with asyncio.timeout(10):
            await bus.connected.wait()
        address = bus.subscribed_to
        victim = next(node for node in cluster_server.masters() if f"127.0.0.1:{node.port}" == address)
        replica = await asyncio.to_thread(replica_of, cluster_server, victim)

        async def watch() -> None:
            state = bus.state
            while True:
                if bus.state != state:
                    state = bus.state
                    transitions.append((time.monotonic(), state))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            killed = time.monotonic()
            if fault == "kill":
                victim.stop()  # SIGKILL
            else:
                assert victim.process is not None
                stalled = victim.process.pid
                os.kill(stalled, signal.SIGSTOP)
            promotion = asyncio.create_task(asyncio.to_thread(_promoted_at, replica, done))
            async with asyncio.timeout(30):
                promoted = await promotion
                while not (transitions and transitions[-1][1] == "subscribed" and transitions[-1][0] > killed):
                    await asyncio.sleep(0.01)
        finally:
            done.set()
            watcher.cancel()
        lost = next((at for at, state in transitions if state != "subscribed"), None)
        resubscribed = transitions[-1][0]
        print(
            f"\nidle listener, {fault}: its replica promoted {promoted - killed:.2f} s after; listener lost it "
            f"{(lost - killed) if lost else float('nan'):.2f} s after the kill, subscribed again (on "
            f"{bus.subscribed_to}) {resubscribed - killed:.2f} s after the kill, {resubscribed - promoted:+.2f} s "
            f"from the promotion"
        )
        assert lost is not None, "the listener never noticed its master's death"
        assert bus.subscribed_to != address
        assert resubscribed - promoted <= LIMIT, (resubscribed - promoted, transitions)
    finally:
        done.set()
        await manager.close()
        if stalled is not None:
            os.kill(stalled, signal.SIGCONT)
