"""The chaos scenarios of issue 13: one fault each, injected under load, judged by the checker.

A run: start the fleet, start the load, let caches warm, inject the fault (which also ends it: restart, resume,
restore), stop writing the quiet users, keep reading for `tail` seconds, stop, judge. `Timing.short()` is the
CI form (the pytest module), `Timing()` the full one (`make chaos`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.cache import CacheManager, MemoryBackend
from app.config import Settings
from app.users.caches import USER_BY_ID
from tests.chaos.checker import Checker, Verdict
from tests.chaos.fleet import Fleet
from tests.chaos.load import Errors, Load, LoadConfig

__all__ = ("SCENARIOS", "Result", "Scenario", "Timing", "run_scenario")


@dataclass(frozen=True, slots=True)
class Timing:
    warmup: float = 2.0
    tail: float = 6.0
    outage: float = 3.0
    """How long a kill, partition or long stall lasts ("a few seconds")."""
    long_stall: float = 5.0

    @classmethod
    def short(cls) -> Timing:
        return cls(warmup=1.0, tail=3.0, outage=2.0, long_stall=3.0)


@dataclass(slots=True)
class FaultContext:
    fleet: Fleet
    load: Load
    timing: Timing
    notes: list[str] = field(default_factory=list[str])


Fault = Callable[[FaultContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    fault: Fault
    near: bool = False
    instances: int = 2
    topology: str = "standalone"
    """`standalone` (behind a proxy per instance), `cluster` (6 nodes) or `sentinel` (`Fleet`)."""
    load: LoadConfig | None = None
    """Which users are written and read (default `LoadConfig()`)."""


@dataclass(slots=True)
class Result:
    scenario: Scenario
    delta: float
    verdict: Verdict
    acks: int
    read_errors: Errors
    write_errors: Errors
    cold_seconds: float
    notes: list[str]

    @property
    def errors(self) -> int:
        return self.read_errors.total_other + self.write_errors.total_other

    @property
    def unavailable(self) -> int:
        return self.read_errors.unavailable + self.write_errors.unavailable

    @property
    def holds(self) -> bool:
        """The guarantee held: no stale read after δ, no error but documented 503s."""
        return self.verdict.stale_after_delta == 0 and self.errors == 0


# -- faults -------------------------------------------------------------------------------------------------


async def no_fault(ctx: FaultContext) -> None:
    await asyncio.sleep(ctx.timing.outage)


async def redis_kill_restart(ctx: FaultContext) -> None:
    """SIGKILL Redis, start it again (empty) after `outage` seconds."""
    await asyncio.to_thread(ctx.fleet.kill_redis)
    await asyncio.sleep(ctx.timing.outage)
    await asyncio.to_thread(ctx.fleet.start_redis)


async def redis_restart_empty(ctx: FaultContext) -> None:
    """SIGKILL Redis and start it again at once, with no data."""
    await asyncio.to_thread(ctx.fleet.kill_redis)
    await asyncio.to_thread(ctx.fleet.start_redis)


def redis_stall(seconds: float | None) -> Fault:
    """SIGSTOP Redis for `seconds` (None: the timing's long stall), then SIGCONT."""

    async def stall(ctx: FaultContext) -> None:
        ctx.fleet.stall_redis()
        try:
            await asyncio.sleep(ctx.timing.long_stall if seconds is None else seconds)
        finally:
            ctx.fleet.resume_redis()

    return stall


async def redis_rollback(ctx: FaultContext) -> None:
    """SAVE, keep writing, SIGKILL, put the old RDB back, start: Redis comes back with older data than it had.

    The quiet users' last writes land (acknowledged, in Redis) before the kill, so the rollback loses them
    rather than a write that failed during the restart and was repaired.
    """
    snapshot = await asyncio.to_thread(ctx.fleet.snapshot_redis)
    await asyncio.sleep(ctx.timing.outage / 2)
    ctx.load.quiet()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(ctx.fleet.kill_redis)
    await asyncio.to_thread(ctx.fleet.start_redis, snapshot)


async def pubsub_loss(ctx: FaultContext) -> None:
    """`CLIENT KILL TYPE pubsub` a few times while writes go on: invalidation messages published meanwhile are lost."""
    killed = 0
    for _ in range(3):
        killed += await asyncio.to_thread(ctx.fleet.kill_pubsub_clients)
        await asyncio.sleep(ctx.timing.outage / 3)
    ctx.notes.append(f"{killed} pub/sub connections killed")


async def partition_one(ctx: FaultContext) -> None:
    """Cut the last instance's proxy for `outage` seconds (it alone loses Redis), then restore it."""
    instance = ctx.fleet.instances[-1]
    proxy = instance.proxy
    assert proxy is not None, "a partition needs the standalone topology (a proxy per instance)"
    await ctx.fleet.proxies.arun(proxy.cut())
    try:
        await asyncio.sleep(ctx.timing.outage)
    finally:
        await ctx.fleet.proxies.arun(proxy.restore())
    ctx.notes.append(f"instance {instance.name} partitioned")


def _user_key(user: int) -> str:
    """The Redis key of `user` in the user cache, as the instances name it (default prefix)."""
    return CacheManager(MemoryBackend(), prefix=Settings().cache_prefix).cache(USER_BY_ID).key(user)


def master_failover(lag: float) -> Fault:
    """Cut off the replica of the master that holds the first quiet user (a cluster's owner of its slot, or the
    Sentinel's master), stop writing the quiet users `lag` seconds later, kill the master, wait for the promotion.

    The master takes the quiet users' last writes and their markers alone: the promoted replica holds older entries
    than the ones acknowledged, as asynchronous replication allows. The hot users are written throughout, so
    PATCHes reach the database while the master is down (on the cluster, `CLUSTER_LOAD` puts hot users on it).
    """

    async def failover(ctx: FaultContext) -> None:
        fleet = ctx.fleet
        config = ctx.load.config
        master, replica = await asyncio.to_thread(fleet.master_and_replica, _user_key(config.quiet_users[0]))
        if fleet.cluster is not None:
            owners = {
                user: await asyncio.to_thread(fleet.cluster.node_for, _user_key(user)) for user in config.hot_users
            }
            ctx.notes.append(
                f"hot users on the killed master: {[user for user, node in owners.items() if node is master]}"
            )
        await asyncio.to_thread(fleet.cut_off, master, replica)
        try:
            await asyncio.sleep(lag)
            ctx.load.quiet()
            await asyncio.sleep(0.3)  # the last quiet writes' markers land too, on the master alone
        finally:
            await asyncio.to_thread(fleet.kill_and_resume, master, replica)
        killed = time.monotonic()
        await asyncio.to_thread(fleet.wait_promoted, replica)
        ctx.notes.append(f"replica promoted {time.monotonic() - killed:.1f} s after the kill")

    return failover


CLUSTER_LOAD = LoadConfig(hot_users=(1, 2), quiet_users=(5, 3, 4))
"""Users 1, 2 and 5 hash to the same master's slots (of the three `redis-cli --cluster create` makes)."""


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("healthy", no_fault),
        Scenario("healthy-near", no_fault, near=True),
        Scenario("redis-kill-restart", redis_kill_restart),
        Scenario("redis-kill-restart-near", redis_kill_restart, near=True),
        Scenario("redis-stall-0.4s-near", redis_stall(0.4), near=True),
        Scenario("redis-stall-long", redis_stall(None)),
        Scenario("redis-stall-long-near", redis_stall(None), near=True),
        Scenario("redis-restart-empty", redis_restart_empty),
        Scenario("redis-restart-empty-near", redis_restart_empty, near=True),
        Scenario("redis-rollback", redis_rollback),
        Scenario("redis-rollback-near", redis_rollback, near=True),
        Scenario("pubsub-loss-near", pubsub_loss, near=True),
        Scenario("partition-one", partition_one),
        Scenario("partition-one-near", partition_one, near=True),
        Scenario("redis-cluster-master-kill", master_failover(0.5), instances=3, topology="cluster", load=CLUSTER_LOAD),
        Scenario(
            "redis-cluster-master-kill-near",
            master_failover(0.5),
            near=True,
            instances=3,
            topology="cluster",
            load=CLUSTER_LOAD,
        ),
        Scenario("sentinel-failover", master_failover(0.5), instances=3, topology="sentinel"),
        Scenario("sentinel-failover-near", master_failover(0.5), near=True, instances=3, topology="sentinel"),
    )
}
"""Every scenario `make chaos` runs."""


async def run_scenario(
    scenario: Scenario,
    database_url: str,
    *,
    timing: Timing | None = None,
    delta: float = 1.0,
    config: LoadConfig | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Start a fleet for `scenario` on the (empty) database, run the load, inject the fault, judge the reads.

    `env` adds settings to every instance's environment.
    """
    timing = timing or Timing()
    fleet = await asyncio.to_thread(
        Fleet, database_url, instances=scenario.instances, near=scenario.near, env=env or {}, topology=scenario.topology
    )
    try:
        checker = Checker(delta)
        load = Load(fleet, checker, config or scenario.load)
        load.start()
        ctx = FaultContext(fleet, load, timing)
        try:
            await asyncio.sleep(timing.warmup)
            fault_started = time.monotonic()
            await scenario.fault(ctx)
            load.quiet()
            await asyncio.sleep(timing.tail)
        finally:
            await load.stop()
        verdict = checker.verdict()
        if verdict.last_stale_after_delta is not None:
            ctx.notes.append(
                f"last stale read {time.monotonic() - verdict.last_stale_after_delta:.1f} s before the end"
            )
        return Result(
            scenario=scenario,
            delta=delta,
            verdict=verdict,
            acks=checker.acks,
            read_errors=load.read_errors,
            write_errors=load.write_errors,
            cold_seconds=load.cold_seconds(fault_started),
            notes=ctx.notes,
        )
    finally:
        await asyncio.to_thread(fleet.close)
        fleet.remove_workdir()
