"""The service on a Redis Cluster under load while a master is SIGKILLed: only that master's keys miss.

With the consistency fence on (the default δ), and users written before and during the outage, on that master and
on the others: the fence's markers for the dead master's keys cannot land, and the writer's repair of its dirty
keys cannot either; neither may cost the keys of the healthy masters their hits (`docs/consistency.md`, §4b).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis

from app.cache.entry import Status
from app.cache.typed import Cache
from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client
from tests.servers import RedisClusterServer, key_slot

CLIENTS = 32
USERS = 10
WINDOW = 0.5
"""Seconds per hit-ratio window."""
WRITES = 0.2
"""Seconds between two PATCHes (each of a user on the killed master and of one on another master)."""


class Reads:
    """Every key the caches were asked for (remote lookups, and reads that bypass untrusted caches), with when and
    whether it hit."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, bool]] = []

    def ratio(self, keys: set[str], start: float, end: float) -> tuple[int, float]:
        hits = [hit for at, key, hit in self.log if start <= at < end and key in keys]
        return len(hits), (sum(hits) / len(hits) if hits else 1.0)

    def first_hit(self, keys: set[str], after: float) -> float | None:
        return next((at for at, key, hit in self.log if at >= after and key in keys and hit), None)


async def test_a_master_killed_under_load_costs_only_its_keys(
    cluster_server: RedisClusterServer, sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads()
    lookup, untrusted = Cache._remote_lookup, Cache._load_untrusted  # pyright: ignore[reportPrivateUsage]

    async def recorded(self: Cache[object, object], backend_keys: list[str]) -> list[tuple[Status, object | None]]:
        results = await lookup(self, backend_keys)
        now = time.monotonic()
        reads.log.extend(
            (now, key, status is not Status.MISS) for key, (status, _) in zip(backend_keys, results, strict=True)
        )
        return results

    async def bypassed(
        self: Cache[object, object], key: object, loader: Callable[[object], Awaitable[object]]
    ) -> object:
        reads.log.append((time.monotonic(), self.key(key), False))  # the fence did not trust the cache
        return await untrusted(self, key, loader)

    monkeypatch.setattr(Cache, "_remote_lookup", recorded)
    monkeypatch.setattr(Cache, "_load_untrusted", bypassed)
    settings = Settings(
        redis_url=cluster_server.url,
        redis_cluster=True,
        database_url=f"sqlite:///{sqlite_path}",
        cache_timeout_ms=100,
    )
    assert settings.cache_consistency_bound_ms > 0  # the fence is on
    app = create_app(settings)
    statuses: list[int] = []
    patched: list[float] = []
    stop = asyncio.Event()
    async with concurrent_client(app) as client:
        for n in range(1, USERS + 1):
            assert (await client.get(f"/users/{n}")).status_code == 200
        cache = app.state.cache_manager.cache(USER_BY_ID)
        await cache.drain()
        keys = {cache.key(n) for n in range(1, USERS + 1)}
        victim = cluster_server.node_for(cache.key(1))
        with redis.Redis(port=victim.port) as direct:
            assert direct.wait(1, 5000) == 1  # its replica has the users
        with_victim = {key for key in keys if cluster_server.node_for(key) is victim}
        healthy = keys - with_victim
        assert healthy
        written = [
            next(n for n in range(1, USERS + 1) if (cache.key(n) in with_victim) is on_victim)
            for on_victim in (True, False)
        ]

        async def one_client(offset: int) -> None:
            n = offset
            while not stop.is_set():
                n = n % USERS + 1
                statuses.append((await client.get(f"/users/{n}")).status_code)

        async def writer() -> None:
            while not stop.is_set():
                for n in written:
                    statuses.append((await client.patch(f"/users/{n}", json={"first_name": f"W{n}"})).status_code)
                    patched.append(time.monotonic())
                await asyncio.sleep(WRITES)

        workers = [asyncio.create_task(one_client(i)) for i in range(CLIENTS)]
        workers.append(asyncio.create_task(writer()))
        try:
            await asyncio.sleep(0.5)
            killed = time.monotonic()
            victim.stop()  # SIGKILL
            await asyncio.to_thread(cluster_server.wait_promoted, cache.key(1))
            promoted = time.monotonic()
            await asyncio.sleep(2.5)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        ended = time.monotonic()
    windows = [
        (start, *reads.ratio(healthy, start, start + WINDOW))
        for start in (killed + WINDOW * i for i in range(int((ended - killed) / WINDOW)))
    ]
    # Trust is per master (docs/consistency.md, §4b): the promoted replica's replies are withheld until the fence
    # has replayed the outbox onto it, and the healthy masters' keys keep hitting meanwhile, in every window.
    burst = [at for at, key, hit in reads.log if key in healthy and not hit and at >= killed]
    resumed = reads.first_hit(with_victim, promoted)
    slots = sorted({key_slot(key.encode()) for key in with_victim})
    around = reads.ratio(healthy, promoted - WINDOW / 2, promoted + WINDOW / 2)
    print(
        f"\ncluster, {CLIENTS} clients, master SIGKILLed ({len(with_victim)} of {USERS} users, slots {slots}): "
        f"{len(statuses)} requests, promotion {promoted - killed:.2f} s after the kill, hits on its slots again "
        f"{(resumed - promoted) * 1000 if resumed else float('nan'):.0f} ms after; {len(patched)} PATCHes; healthy "
        f"keys missed {len(burst)} times"
        + (f", from {min(burst) - promoted:+.3f} s to {max(burst) - promoted:+.3f} s of the promotion" if burst else "")
        + ";"
        f" healthy hit ratio in the {WINDOW} s window centred on the promotion {around[1]:.1%} ({around[0]});"
        f" per {WINDOW} s window: "
        + ", ".join(f"{start - killed:.1f}s {ratio:.0%} ({n})" for start, n, ratio in windows)
    )
    assert {status for status in statuses if not 200 <= status < 300} == set()
    assert any(killed < at < promoted for at in patched), "no PATCH while the master was down"
    measured = [ratio for _, n, ratio in windows if n]  # a loaded machine may starve a window of requests
    assert len(measured) >= len(windows) * 2 / 3, windows
    assert min(measured) >= 0.9, windows  # the windows the promotion falls in included
    assert around[1] >= 0.9, around
    assert resumed is not None, "no hit on the failed master's slots after the promotion"
    assert resumed - promoted < 2.0
