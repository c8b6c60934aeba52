"""The load: writers that PATCH a few users, readers that GET them through every instance, and a metrics poller.

Writers: one task per written user, each through one instance, a PATCH every `write_interval` seconds. "Hot"
users are written until the load stops; "quiet" users only until `quiet()` is called (a scenario calls it when
its fault is over), so a stale entry left behind by the fault stays visible instead of being overwritten by the
next write. Readers: `readers_per_instance` tasks per instance, each reading the written users in turn as fast
as the instance answers. The poller scrapes each instance's `/metrics` and counts how many of the reads sent in
each interval were served from a cache (near or remote hits); an interval where fewer than half were is "cold".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field

import httpx

from tests.chaos.checker import Ack, Checker, Read
from tests.chaos.fleet import Fleet, Instance

__all__ = ("Errors", "Load", "LoadConfig", "cache_hits")

CACHE = "user"
LOOKUPS = re.compile(r"^cache_lookups_total\{([^}]*)\} (\S+)$", re.MULTILINE)
MAX_READS = 300_000


@dataclass(slots=True)
class LoadConfig:
    hot_users: tuple[int, ...] = (1, 2)
    quiet_users: tuple[int, ...] = (3, 4)
    write_interval: float = 0.1
    readers_per_instance: int = 4
    timeout: float = 5.0
    poll_interval: float = 0.25


@dataclass(slots=True)
class Errors:
    """Answers other than 2xx: 503s with `Retry-After` (documented: overload, database down) apart from the rest."""

    unavailable: int = 0
    other: dict[str, int] = field(default_factory=dict[str, int])

    def count(self, kind: str) -> None:
        self.other[kind] = self.other.get(kind, 0) + 1

    @property
    def total_other(self) -> int:
        return sum(self.other.values())


def cache_hits(metrics: str) -> float:
    """Hits of the user cache, near and remote, in a `/metrics` scrape."""
    total = 0.0
    for labels, value in LOOKUPS.findall(metrics):
        pairs = dict(pair.split("=", 1) for pair in labels.split(","))
        if pairs.get("cache") == f'"{CACHE}"' and pairs.get("result") == '"hit"':
            total += float(value)
    return total


class Load:
    """Runs the writers, readers and poller until `stop()`; feeds `checker`."""

    __slots__ = (
        "_clients",
        "_quiet",
        "_reads_sent",
        "_stop",
        "_tasks",
        "checker",
        "cold",
        "config",
        "fleet",
        "read_errors",
        "write_errors",
    )

    def __init__(self, fleet: Fleet, checker: Checker, config: LoadConfig | None = None) -> None:
        self.fleet = fleet
        self.checker = checker
        self.config = config or LoadConfig()
        self.read_errors = Errors()
        self.write_errors = Errors()
        self.cold: dict[str, list[tuple[float, float, bool]]] = {i.name: [] for i in fleet.instances}
        """Per instance: (interval start, interval end, cold?) for each poll interval."""
        self._reads_sent = dict.fromkeys(self.cold, 0)
        self._stop = asyncio.Event()
        self._quiet = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: dict[str, httpx.AsyncClient] = {}

    @property
    def users(self) -> tuple[int, ...]:
        return self.config.hot_users + self.config.quiet_users

    def start(self) -> None:
        instances = self.fleet.instances
        for instance in instances:
            limits = httpx.Limits(max_connections=self.config.readers_per_instance + len(self.users) + 2)
            self._clients[instance.name] = httpx.AsyncClient(
                base_url=instance.base_url, timeout=self.config.timeout, limits=limits
            )
        for index, user in enumerate(self.users):
            writer = instances[index % len(instances)] if user in self.config.quiet_users else instances[0]
            self._tasks.append(asyncio.create_task(self._write(user, writer, quiet=user in self.config.quiet_users)))
        for instance in instances:
            for reader in range(self.config.readers_per_instance):
                self._tasks.append(asyncio.create_task(self._read(instance, reader)))
            self._tasks.append(asyncio.create_task(self._poll(instance)))

    def quiet(self) -> None:
        """From now on the quiet users are no longer written."""
        self._quiet.set()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()

    def _classify(self, errors: Errors, response: httpx.Response) -> None:
        if response.status_code == 503 and "retry-after" in response.headers:
            errors.unavailable += 1
        else:
            errors.count(str(response.status_code))

    async def _write(self, user: int, instance: Instance, *, quiet: bool) -> None:
        client = self._clients[instance.name]
        sequence = 0
        while not self._stop.is_set() and not (quiet and self._quiet.is_set()):
            sequence += 1
            try:
                response = await client.patch(f"/users/{user}", json={"first_name": f"chaos{sequence}"})
            except httpx.TransportError as exc:
                self.write_errors.count(type(exc).__name__)
            else:
                if response.is_success:
                    version = int(response.json()["version"])
                    self.checker.acknowledged(Ack(user, version, time.monotonic(), instance.name))
                else:
                    self._classify(self.write_errors, response)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.write_interval)

    async def _read(self, instance: Instance, offset: int) -> None:
        client = self._clients[instance.name]
        users = self.users
        index = offset
        while not self._stop.is_set() and len(self.checker.reads) < MAX_READS:
            user = users[index % len(users)]
            index += 1
            started = time.monotonic()
            self._reads_sent[instance.name] += 1
            try:
                response = await client.get(f"/users/{user}")
            except httpx.TransportError as exc:
                self.read_errors.count(type(exc).__name__)
                await asyncio.sleep(0.05)
                continue
            if response.is_success:
                self.checker.read(Read(user, int(response.json()["version"]), started, instance.name))
            else:
                self._classify(self.read_errors, response)

    async def _hits(self, client: httpx.AsyncClient) -> float | None:
        try:
            response = await client.get("/metrics")
        except httpx.TransportError:
            return None
        if not response.is_success:
            return None
        return cache_hits(response.text)

    async def _poll(self, instance: Instance) -> None:
        client = self._clients[instance.name]
        previous = (time.monotonic(), await self._hits(client), self._reads_sent[instance.name])
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.poll_interval)
            now, hits, sent = time.monotonic(), await self._hits(client), self._reads_sent[instance.name]
            then, hits_before, sent_before = previous
            if hits is not None and hits_before is not None and sent > sent_before:
                cold = (hits - hits_before) < 0.5 * (sent - sent_before)
                self.cold[instance.name].append((then, now, cold))
            previous = (now, hits, sent)

    def cold_seconds(self, since: float) -> float:
        """The longest time any one instance spent in cold intervals after `since`."""
        return max(
            (sum(end - max(start, since) for start, end, cold in intervals if cold and end > since))
            for intervals in self.cold.values()
        )
