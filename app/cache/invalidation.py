"""Cross-process invalidation of near caches over Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from redis.asyncio import RedisCluster

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from app.cache.near import NearCache

__all__ = ("InvalidationBus",)

logger = logging.getLogger(__name__)

_KEY_SEPARATOR = "\n"

_MAX_BACKOFF_SECONDS = 1.0
_MIN_SILENCE_SECONDS = 2.0
"""A subscription silent this long (and three pings long) is dead. Shorter, with pings every δ/4, a loaded loop
or a cluster's slot-map refreshes delayed pongs past it: listeners flapped through a failover (test_near_cluster).
With the fence on, the near caches do not need the bus to stay correct (docs/consistency.md §6)."""
"""Retries of a lost subscription are at most this far apart, so a promoted replica is found within ~2 s."""


class InvalidationBus:
    """Publish the keys this process writes; drop the keys every process writes from the near caches.

    Near caches are enabled only while the subscription is up: when it drops (Redis restarts, the network
    fails, a ping goes unanswered), every near cache is cleared and turned off until the bus has subscribed
    again, so a missed invalidation can never leave a stale entry behind.

    The listener survives any error: it logs once per outage, retries with backoff (at most
    `_MAX_BACKOFF_SECONDS` apart) and, on a cluster, with a fresh slot map and the next master each time
    (a published message reaches every node of a cluster, so any master will do).
    """

    __slots__ = (
        "_attempt",
        "_client",
        "_near",
        "_stopping",
        "_task",
        "channel",
        "connected",
        "failures",
        "last_error",
        "ping_interval",
        "published",
        "received",
        "subscribed_to",
    )

    def __init__(self, client: Redis | RedisCluster, channel: str, *, ping_interval: float = 1.0) -> None:
        """Use `client` (not closed by the bus) to publish and subscribe on `channel`."""
        self._client = client
        self.channel = channel
        self.ping_interval = ping_interval
        self._near: list[NearCache] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()
        self.published = 0
        self.received = 0
        self.failures = 0
        """Subscriptions lost or refused since start-up."""
        self.last_error: str | None = None
        self.subscribed_to: str | None = None
        """`host:port` of the node the subscription is on, while subscribed."""
        self._attempt = 0

    @property
    def state(self) -> str:
        """`subscribed`, `retrying` (after an error, until subscribed again), `starting` or `stopped`."""
        if self.connected.is_set():
            return "subscribed"
        if self._task is None:
            return "stopped"
        return "retrying" if self.last_error is not None else "starting"

    def attach(self, near: NearCache) -> None:
        """Keep `near` in step with the channel."""
        self._near.append(near)
        near.enabled = self.connected.is_set()

    async def publish(self, keys: Sequence[str]) -> bool:
        """Tell every process to drop `keys` from its near caches. Returns whether the message went out."""
        try:
            await self._client.publish(self.channel, _KEY_SEPARATOR.join(keys))  # pyright: ignore[reportUnknownMemberType]
        except Exception:  # noqa: BLE001 - any redis-py/hiredis/uvloop error: the message did not go out
            return False
        self.published += 1
        return True

    def start(self) -> None:
        """Start listening in the background."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-invalidation-bus")

    async def close(self) -> None:
        """Stop listening; near caches are turned off."""
        task, self._task = self._task, None
        try:
            if task is not None:
                # The flag ends the loops even if redis-py swallows the cancellation somewhere; `wait` (unlike
                # awaiting the task under `suppress(CancelledError)`) lets a cancellation of the caller through.
                self._stopping = True
                task.cancel()
                await asyncio.wait({task})
                if not task.cancelled():
                    task.result()
        finally:
            self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected.is_set():
            return
        if connected:
            self.connected.set()
        else:
            self.connected.clear()
        for near in self._near:
            near.enabled = connected

    def _invalidate(self, keys: Iterable[str]) -> None:
        self.received += 1
        for near in self._near:
            near.invalidate(keys)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                await self._listen()
            except Exception as exc:  # noqa: BLE001 - the listener must outlive any error; cancellation passes
                error = f"{type(exc).__name__}: {exc}"
                if self.connected.is_set() or self.last_error is None:
                    logger.warning(
                        "near-cache invalidations lost (%s); near caches off until resubscribed, retrying", error
                    )
                self.failures += 1
                self.last_error = error
                self.subscribed_to = None
                self._set_connected(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            else:
                backoff = 0.1

    async def _pubsub(self) -> PubSub:
        """A pub/sub on the server, or on a cluster on the next master of a fresh slot map after a failure."""
        client = self._client
        if not isinstance(client, RedisCluster):
            return client.pubsub()  # pyright: ignore[reportUnknownMemberType]
        if self.last_error is not None:
            await client.nodes_manager.initialize()  # the old map may name a dead node
        else:
            await client.initialize()  # a cluster client knows no nodes before its first command
        masters = client.get_primaries()
        node = masters[self._attempt % len(masters)]
        self._attempt += 1
        return client.pubsub(node=node)  # pyright: ignore[reportUnknownMemberType]

    async def _listen(self) -> None:
        pubsub = await self._pubsub()
        try:
            await pubsub.subscribe(self.channel)  # pyright: ignore[reportUnknownMemberType]
            last_seen = time.monotonic()
            last_ping = 0.0
            while not self._stopping:
                message = await pubsub.get_message(timeout=self.ping_interval / 2)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
                now = time.monotonic()
                if message is not None:
                    last_seen = now
                    kind = message.get("type")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
                    if kind == "subscribe":
                        if not self.connected.is_set():
                            logger.info("near-cache invalidations subscribed on %s", self.channel)
                        self.subscribed_to = _address(pubsub)
                        self._set_connected(True)
                    elif kind == "message":
                        data = message["data"]  # pyright: ignore[reportUnknownVariableType]
                        text = data.decode() if isinstance(data, bytes) else str(data)  # pyright: ignore[reportUnknownArgumentType]
                        self._invalidate(text.split(_KEY_SEPARATOR))
                if now - last_seen > max(3 * self.ping_interval, _MIN_SILENCE_SECONDS):
                    raise TimeoutError("no answer to pings on the invalidation channel")
                if now - last_ping >= self.ping_interval:
                    last_ping = now
                    await pubsub.ping()  # pyright: ignore[reportUnknownMemberType]
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # pyright: ignore[reportUnknownMemberType]


def _address(pubsub: PubSub) -> str | None:
    connection = pubsub.connection
    if connection is None:
        return None
    host = getattr(connection, "host", None)
    port = getattr(connection, "port", None)
    return f"{host}:{port}" if host is not None else None
