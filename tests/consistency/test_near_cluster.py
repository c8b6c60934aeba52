"""Three instances with near caches on a Redis Cluster: invalidations arrive, and no read is stale after δ, also
while the master that carries one instance's invalidation channel fails over.

Near entries live 60 s here, so only the invalidations (pub/sub, and the fence's sync when a message is lost) keep
them fresh. Prints the delivery latency of invalidations (from the PATCH being sent to the message reaching the
other two instances: an upper bound), before and after the failover. Right after a failover the writer's circuit
breaker may still be open: its writes skip Redis and are not published, and only the fences' syncs drop them from
the other near caches (the reads stay fresh; the delay until messages flow again is printed).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterable

import httpx
from litestar import Litestar

from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.chaos.checker import Ack, Checker, Read
from tests.consistency.test_faults import _settings
from tests.servers import RedisClusterServer

BOUND = 1.0
"""δ: the default (the bus pings every δ/4; three instances and their load share one event loop here)."""
USERS = (1, 3, 4)
"""On three different masters (of the three slot ranges `redis-cli --cluster create` makes)."""


class Arrivals:
    """Attached to a bus like a near cache: when each key's invalidation arrived."""

    def __init__(self) -> None:
        self.enabled = False
        self.seen: dict[str, list[float]] = {}

    def invalidate(self, keys: Iterable[str]) -> int:
        now = time.monotonic()
        for key in keys:
            self.seen.setdefault(key, []).append(now)
        return 0

    def first_after(self, key: str, since: float) -> float | None:
        return next((at for at in self.seen.get(key, []) if at >= since), None)


async def _wait(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def _latencies(
    writer: httpx.AsyncClient, key_of: Callable[[int], str], arrivals: list[Arrivals], rounds: int = 8
) -> list[float]:
    """PATCH each user `rounds` times, one at a time; how long until each other instance heard of it."""
    latencies: list[float] = []
    for round_ in range(rounds):
        for user in USERS:
            sent = time.monotonic()
            assert (await writer.patch(f"/users/{user}", json={"first_name": f"L{round_}"})).status_code == 200
            key = key_of(user)
            for arrival in arrivals:
                await _wait(lambda arrival=arrival, key=key, sent=sent: arrival.first_after(key, sent), 5)
                latencies.append(arrival.first_after(key, sent) - sent)  # type: ignore[operator]
    return latencies


async def _heard_again(writer: httpx.AsyncClient, key_of: Callable[[int], str], arrivals: list[Arrivals]) -> float:
    """Seconds until a round of writes is heard again by every instance (the writer's circuit breaker may still be
    open after the failover: a write that skips Redis is not published, and only the fence's sync drops it)."""
    started = time.monotonic()
    while True:
        try:
            await _latencies(writer, key_of, arrivals, rounds=1)
        except AssertionError:
            assert time.monotonic() - started < 15, "invalidations did not arrive again"
        else:
            return time.monotonic() - started


def _summary(latencies: list[float]) -> str:
    return f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"


async def test_near_caches_on_a_cluster_hear_every_write_and_serve_nothing_stale_through_a_failover(
    cluster_server: RedisClusterServer, sqlite_path: str
) -> None:
    settings = _settings(
        cluster_server.url,
        f"sqlite:///{sqlite_path}",
        redis_cluster=True,
        cache_near_enabled=True,
        cache_near_ttl_seconds=60,
        cache_timeout_ms=200,
        cache_consistency_bound_ms=int(BOUND * 1000),
    )
    apps: list[Litestar] = [create_app(settings) for _ in range(3)]
    checker = Checker(BOUND)
    async with concurrent_client(apps[0]) as a, concurrent_client(apps[1]) as b, concurrent_client(apps[2]) as c:
        buses = [app.state.cache_manager.bus for app in apps]
        await _wait(lambda: all(bus.connected.is_set() for bus in buses))
        arrivals = [Arrivals(), Arrivals()]
        for bus, arrival in zip(buses[1:], arrivals, strict=True):
            bus.attach(arrival)
        cache = apps[1].state.cache_manager.cache(USER_BY_ID)
        before = await _latencies(a, cache.key, arrivals)

        stop = asyncio.Event()

        async def write() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                user = USERS[n % len(USERS)]
                response = await a.patch(f"/users/{user}", json={"last_name": f"W{n}"})
                assert response.status_code == 200, response.text
                checker.acknowledged(Ack(user, response.json()["version"], time.monotonic(), "A"))
                await asyncio.sleep(0.03)

        async def read(client: httpx.AsyncClient, name: str) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                user = USERS[n % len(USERS)]
                started = time.monotonic()
                response = await client.get(f"/users/{user}")
                assert response.status_code == 200, response.text
                checker.read(Read(user, response.json()["version"], started, name))

        tasks = [asyncio.create_task(write())]
        tasks += [asyncio.create_task(read(client, name)) for client, name in ((b, "B"), (c, "C")) for _ in range(3)]
        try:
            await asyncio.sleep(1.0)
            await _wait(buses[1].connected.is_set)
            channel = buses[1].subscribed_to
            victim = next(node for node in cluster_server.masters() if f"127.0.0.1:{node.port}" == channel)
            victim.stop()  # SIGKILL the master B's invalidations come from
            await _wait(lambda: not buses[1].connected.is_set(), 10)
            await asyncio.to_thread(cluster_server.wait_ok, 30)
            await _wait(lambda: all(bus.connected.is_set() for bus in buses), 15)
            promoted = time.monotonic()
            assert buses[1].subscribed_to != channel
            await asyncio.sleep(1.5)
            # Writes stall while the master that held the users' keys is down (each PATCH waits out the cache
            # timeout): whether it did depends on the keys' slots, which change with the schema fingerprint.
            await _wait(lambda: checker.acks >= 5, 15)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        stopped = time.monotonic()
        first_heard = [
            min((at for ats in arr.seen.values() for at in ats if at >= promoted), default=None) for arr in arrivals
        ]
        resumed = await _heard_again(a, cache.key, arrivals)
        after = await _latencies(a, cache.key, arrivals)
        near_hits = sum(app.state.cache_manager.cache(USER_BY_ID).stats.near_hits for app in apps[1:])
    verdict = checker.verdict()
    print(
        f"invalidations before the failover: {_summary(before)}; after: {_summary(after)}; "
        f"B, C first heard a write {[None if t is None else round(t - promoted, 2) for t in first_heard]} s after "
        f"every bus had resubscribed; load stopped {stopped - promoted:.1f} s after, then heard in {resumed:.2f} s; "
        f"{verdict.reads} reads, {checker.acks} writes, {verdict.stale} stale within δ, "
        f"max staleness {verdict.max_staleness * 1000:.0f} ms, {near_hits} near hits"
    )
    assert verdict.reads > 200
    assert checker.acks >= 5
    assert near_hits > 100  # the near caches did answer
    assert verdict.stale_after_delta == 0, verdict
    assert max(before + after) < 0.5
