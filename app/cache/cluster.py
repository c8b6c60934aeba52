"""Redis Cluster backend: one multiplexed connection and one circuit breaker per master, keys grouped per master.

redis-py's cluster client checks a pooled connection out per node for every call, and its `mget_nonatomic`
costs about as much again in bookkeeping (0.6x the standalone service, issue 14). Here each master has one
`MultiplexedConnection` that every caller shares; a batch of keys is split by the slot map into one pipelined
write per master (MGET cannot span slots on a cluster, and cache keys rarely share one, so a master gets one
GET per key, all in one write), and the masters are asked concurrently. A read is written to every master before
any reply is awaited, then its caller waits for all of them under one deadline, in its own task: no task or timer
per master, and one future for each master's replies (not one per key). Writes, rarer, run one task per master.

A failure costs only its master's keys. Each master sits behind its own `CircuitBreakerBackend`: a read whose
master fails (or whose breaker is open, which fails at once) is a miss for that master's keys only, and the
others are hits. Writes and deletes go to every master concerned and raise `CacheBackendError` when any of them
failed, after the others have been applied (the caller then treats the whole batch as not written). A consistency
fence write (`FENCE_WRITE`) that fails on a master resets that master's connection first, so that whatever the
master still holds is only read again over a new connection, which `on_node_connect` announces; the failure is
then a `CacheBackendResetError`, which the fence counts as applied (`docs/consistency.md`, §4b).

The slot map is redis-py's (`RedisCluster.nodes_manager`, refreshed through it): read once on first use, and
again soon after any failure or redirection (MOVED/ASK), at most every `REFRESH_INTERVAL`, so a promoted
replica takes over its slots within a fraction of a second of the cluster announcing it. A redirected batch is
sent once more after the refresh.
"""

from __future__ import annotations

import asyncio
import time
from binascii import crc_hqx
from typing import TYPE_CHECKING, Any

from redis.asyncio import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from typing_extensions import override

from app.cache.backend import FENCE_WRITE, CacheBackend, CacheBackendError, CacheBackendResetError
from app.cache.breaker import BreakerState, CircuitBreakerBackend, new_latency, wait_within
from app.cache.multiplex import MultiplexedConnection, RedisReplyError
from app.cache.nodes import NodeHealth
from app.cache.redis import SET_IF_NEWER, translate_errors

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from redis.asyncio.cluster import ClusterNode

    from app.cache.backend import Entry
    from app.cache.stats import LatencyHistogram

    _Parts = list[tuple[CircuitBreakerBackend, list[int]]]
    """The masters concerned by a call, each with the positions of its keys."""

    _Run = Callable[[_Parts], Awaitable[list[BaseException | None]]]
    """Runs every master's part of a call; returns what each part raised (`None`: nothing)."""

__all__ = ("REFRESH_INTERVAL", "ClusterBackend")

REFRESH_INTERVAL = 0.2
"""Seconds between two refreshes of the slot map while failures or redirections keep asking for one."""

_Outcome = tuple["CircuitBreakerBackend | None", "BaseException | None"]
"""What one master's part of a call raised (`None`: nothing), and that master (`None`: not known)."""

_SLOT_MASK = REDIS_CLUSTER_HASH_SLOTS - 1


class _RedirectedError(Exception):
    """A master answered MOVED or ASK: the slot map is out of date (not a failure of that master)."""


class _NodeBackend(CacheBackend):
    """The keys of one master, over its multiplexed connection. Every call is one pipelined write."""

    __slots__ = ("_sha", "_writes", "address", "connection", "max_batch")

    name = "redis"

    def __init__(self, address: str, connection: MultiplexedConnection, *, max_batch: int, writes: int) -> None:
        self.address = address
        self.connection = connection
        self.max_batch = max_batch
        self._writes = asyncio.Semaphore(writes)
        self._sha: str | None = None

    async def _run(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send `commands` pipelined (in writes of at most `max_batch`); raise on any error reply."""
        try:
            if len(commands) <= self.max_batch:
                replies = await self.connection.pipeline(commands)
            else:
                size = self.max_batch
                parts = await asyncio.gather(
                    *(self.connection.pipeline(commands[at : at + size]) for at in range(0, len(commands), size))
                )
                replies = [reply for part in parts for reply in part]
        except Exception as exc:  # any: see `translate_errors`
            raise self.failed(exc) from exc
        return self.check(replies)

    def submit(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        """Send `commands` now, without waiting (`MultiplexedConnection.submit`); `check` the replies."""
        if len(commands) > self.max_batch:  # several writes: rare enough for a task
            return asyncio.ensure_future(self._run(commands))
        return self.connection.submit(commands)

    def failed(self, exc: BaseException) -> CacheBackendError | _RedirectedError:
        """`exc` (a call's or `check`'s) as the breaker counts it: a `CacheBackendError` naming this master."""
        if isinstance(exc, (CacheBackendError, _RedirectedError)):
            return exc
        return CacheBackendError(f"{self.address}: {type(exc).__name__}: {exc}")

    def check(self, replies: list[Any]) -> list[Any]:
        """`replies` of a pipeline, unless one is an error.

        Raises:
            _RedirectedError: A reply is MOVED or ASK.
            CacheBackendError: Another error reply (NOSCRIPT excepted: `set_many_if_newer` handles it).
        """
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                message = str(reply)
                if message.startswith(("MOVED ", "ASK ")):
                    raise _RedirectedError(message)
                if not message.startswith("NOSCRIPT"):
                    raise CacheBackendError(f"{self.address}: {message}")
        return replies

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._run([("GET", key) for key in keys])

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        async with self._writes:
            await self._run([("SET", entry.key, entry.value, "PX", entry.ttl_ms) for entry in entries])

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        async with self._writes:
            for _ in range(2):
                if self._sha is None:
                    self._sha = str((await self._run([("SCRIPT", "LOAD", SET_IF_NEWER)]))[0], "ascii")
                replies = await self._run(
                    [
                        ("EVALSHA", self._sha, 1, entry.key, entry.value, version, entry.ttl_ms)
                        for entry, version in zip(entries, versions, strict=True)
                    ]
                )
                if not any(isinstance(reply, RedisReplyError) for reply in replies):
                    return [bool(reply) for reply in replies]
                self._sha = None  # NOSCRIPT: a new or restarted master; load it and run again (idempotent)
        raise CacheBackendError(f"{self.address}: the compare-and-set script does not stay loaded")

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        async with self._writes:
            await self._run([("UNLINK", key) for key in keys])

    @override
    async def ping(self) -> None:
        await self._run([("PING",)])

    @override
    async def close(self) -> None:
        await self.connection.close()


class ClusterBackend(CacheBackend):
    """A backend on a Redis Cluster (see the module docstring).

    `on_node_connect` (the consistency fence's per-master hook, `CacheFence.withhold`) is called with a master's
    `host:port` whenever its read connection opens (first use, or a reconnect after the connection dropped or was
    reset) and whenever the slot map gives slots it did not have to a master (a promotion, a resharding), before
    any reply read over that connection or for those slots is handed out; `owner` names a key's master.
    """

    __slots__ = (
        "_client",
        "_last_refresh",
        "_latency",
        "_nodes",
        "_owns_client",
        "_refreshing",
        "_slots",
        "chunk_size",
        "on_node_connect",
        "refreshes",
        "socket_timeout",
        "timeout",
        "write_concurrency",
    )

    name = "redis"

    def __init__(
        self,
        client: RedisCluster,
        *,
        timeout: float = 0.1,
        socket_timeout: float = 0.5,
        chunk_size: int = 500,
        write_concurrency: int = 8,
        owns_client: bool = False,
    ) -> None:
        """Wrap a cluster client (for its slot map, pub/sub and health); reads and writes have their own.

        Args:
            client: A client created with `decode_responses=False`.
            timeout: Seconds one call to one master may take before its breaker counts a failure.
            socket_timeout: Connect timeout of a master's connection, and how long it may stay silent with
                commands pending before it is dropped.
            chunk_size: Commands per pipelined write to one master.
            write_concurrency: Write batches in flight per master at once (the others wait their turn).
            owns_client: Close the client in `close()`.
        """
        self._client = client
        self._owns_client = owns_client
        self.timeout = timeout
        self.socket_timeout = socket_timeout
        self.chunk_size = chunk_size
        self.write_concurrency = write_concurrency
        self._slots: list[CircuitBreakerBackend] | None = None
        self._nodes: dict[str, CircuitBreakerBackend] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._last_refresh = 0.0
        self._latency = new_latency()
        self.refreshes = 0
        """Slot map refreshes so far."""
        self.on_node_connect: Callable[[str], None] | None = None
        """See the class docstring."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.1,
        max_connections: int = 64,
        socket_timeout: float = 0.5,
        chunk_size: int = 500,
    ) -> ClusterBackend:
        """Build a backend with its own cluster client, `url` naming any node. Connects lazily, on first use.

        Args:
            url: A `redis://` or `rediss://` URL of one node (TLS settings from the URL apply to every node).
            timeout: See the constructor.
            max_connections: Pool size per node of the redis-py client (pub/sub and health only).
            socket_timeout: See the constructor.
            chunk_size: See the constructor.
        """
        client = RedisCluster.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, timeout=timeout, socket_timeout=socket_timeout, chunk_size=chunk_size, owns_client=True)

    @property
    def client(self) -> RedisCluster:
        """The redis-py cluster client (for pub/sub and tests)."""
        return self._client

    @property
    def nodes(self) -> dict[str, CircuitBreakerBackend]:
        """Each master's breaker, by `host:port` (the masters of the slot map last read)."""
        return self._nodes

    @property
    def state(self) -> BreakerState:
        """The worst state of the masters' breakers (`open` while any master's is open)."""
        states = {node.state for node in self._nodes.values()}
        for state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            if state in states:
                return state
        return BreakerState.CLOSED

    @property
    def lag_timeouts(self) -> int:
        """Calls to the current masters that timed out while the event loop lagged (not counted as failures)."""
        return sum(node.lag_timeouts for node in self._nodes.values())

    @property
    def latency(self) -> dict[str, LatencyHistogram]:
        """Call latency by operation, every master's calls together."""
        return self._latency

    # -- the slot map -------------------------------------------------------------------------------

    async def _slot_map(self) -> list[CircuitBreakerBackend]:
        slots = self._slots
        if slots is None:
            await self.refresh()
            slots = self._slots
            assert slots is not None  # noqa: S101 - refresh() sets it or raises
        return slots

    async def refresh(self) -> None:
        """Read the slot map again (through redis-py); concurrent callers share one refresh.

        Raises:
            CacheBackendError: No node answered.
        """
        refreshing = self._refreshing
        if refreshing is None or refreshing.done():
            refreshing = self._refreshing = asyncio.ensure_future(self._refresh())
            refreshing.add_done_callback(_retrieve_exception)
        await asyncio.shield(refreshing)

    def _refresh_soon(self) -> None:
        """After a failure: refresh in the background, unless one ran within `REFRESH_INTERVAL`."""
        refreshing = self._refreshing
        if (refreshing is None or refreshing.done()) and time.monotonic() - self._last_refresh >= REFRESH_INTERVAL:
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(_retrieve_exception)

    async def _refresh(self) -> None:
        self._last_refresh = time.monotonic()
        client = self._client
        with translate_errors():  # a malformed map too (redis-py checks coverage, not every slot)
            async with asyncio.timeout(self.socket_timeout * 4):
                if self._slots is None:
                    await client.initialize()
                else:
                    await client.nodes_manager.initialize()
            self.refreshes += 1
            owners = client.nodes_manager.slots_cache
            previous = self._slots
            nodes: dict[str, CircuitBreakerBackend] = {}
            slots: list[CircuitBreakerBackend] = []
            gained: set[str] = set()
            for slot in range(REDIS_CLUSTER_HASH_SLOTS):
                master = owners[slot][0]
                node = nodes.get(master.name)
                if node is None:
                    node = nodes[master.name] = self._nodes.get(master.name) or self._node(master)
                if previous is not None and previous[slot] is not node:
                    gained.add(master.name)
                slots.append(node)
        retired = [node for address, node in self._nodes.items() if address not in nodes]
        self._nodes = nodes
        self._slots = slots
        if self.on_node_connect is not None:
            for address in sorted(gained):
                # Also a node whose connection is not open yet (it announces itself again when it opens): every
                # change of a slot's owner is heard, so a lookup whose round trip saw none was routed by the map
                # its replies are judged by (`owner`). The fence's probe opens that connection before its sync
                # reads what to replay, so a promoted replica still costs one replay.
                self.on_node_connect(address)
        for node in retired:
            await node.close()

    def owner(self, key: str) -> str | None:
        """The `host:port` of the master that owns `key` in the slot map last read (`None` before the first)."""
        slots = self._slots
        if slots is None:
            return None
        inner = slots[key_slot(key.encode())].inner
        assert isinstance(inner, _NodeBackend)  # noqa: S101 - built by _node()
        return inner.address

    def _node(self, master: ClusterNode) -> CircuitBreakerBackend:
        address = master.name
        connection = MultiplexedConnection.from_options(
            master.connection_class, master.connection_kwargs, timeout=self.socket_timeout
        )
        connection.on_connect = lambda: self._connected(address)
        node = _NodeBackend(address, connection, max_batch=self.chunk_size, writes=self.write_concurrency)
        return CircuitBreakerBackend(node, timeout=self.timeout, latency=self._latency)

    def _connected(self, address: str) -> None:
        if self.on_node_connect is not None:
            self.on_node_connect(address)

    def _route(
        self, slots: list[CircuitBreakerBackend], keys: Sequence[str], positions: Iterable[int]
    ) -> dict[CircuitBreakerBackend, list[int]]:
        """The `positions` in `keys` of each master's keys."""
        groups: dict[CircuitBreakerBackend, list[int]] = {}
        for index in positions:
            key = keys[index]
            raw = key.encode()
            # redis-py's `key_slot` inline for a key without a hash tag (most keys): a Python call less per key. (The
            # test is on the str: `b"{" in raw` first tries b"{" as an int, and raises and clears a TypeError.)
            node = slots[crc_hqx(raw, 0) & _SLOT_MASK if "{" not in key else key_slot(raw)]
            group = groups.get(node)
            if group is None:
                groups[node] = [index]
            else:
                group.append(index)
        return groups

    async def _each_master(self, keys: Sequence[str], run: _Run) -> list[_Outcome]:
        """Run every master's part (`run(parts)`: what each part raised, `None` if nothing); return the outcomes.

        A redirected master's part is routed again after a refresh of the slot map and run once more (if the
        refresh fails, that part's outcome names no master).
        """
        slots = self._slots
        if slots is None:
            with translate_errors():
                slots = await self._slot_map()
        groups = self._route(slots, keys, range(len(keys)))
        outcomes: list[_Outcome] = []
        for attempt in range(2):
            parts = list(groups.items())
            results = await run(parts)
            redirected: list[int] = []
            for (node, positions), result in zip(parts, results, strict=True):
                if result is None:
                    outcomes.append((node, None))
                elif isinstance(result, _RedirectedError) and not attempt:
                    redirected.extend(positions)
                else:
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    outcomes.append((node, result))
                    self._refresh_soon()
            if not redirected:
                break
            try:  # a caller waits for the new map no longer than for one master
                async with asyncio.timeout(self.timeout):
                    await self.refresh()
            except (CacheBackendError, TimeoutError) as exc:
                outcomes.append((None, exc))  # the redirected part failed; the others stand
                break
            groups = self._route(await self._slot_map(), keys, redirected)
        return outcomes

    async def _read(self, keys: Sequence[str], parts: _Parts, values: list[bytes | None]) -> list[BaseException | None]:
        """Read each master's part of `keys` into `values`: send to every master first, then wait for all at once.

        One deadline (`wait_within`, the breakers' timeout) for every master instead of one task and one timer
        each: a batch costs one timer, and one future per master. Each master's breaker admits its part (an open
        one fails it at once) and counts its outcome, a master still silent at the deadline as a timeout. Each
        master's call is timed to the end of the wait (the `get` histogram sees the slowest master's time for each).
        """
        results: list[BaseException | None] = [None] * len(parts)
        sent: list[tuple[int, CircuitBreakerBackend, _NodeBackend, bool, asyncio.Future[list[Any]]]] = []
        started = time.perf_counter()
        try:
            for at, (node, positions) in enumerate(parts):
                inner = _inner(node)
                try:
                    probe = node.admit()
                except CacheBackendError as exc:
                    results[at] = exc
                    continue
                try:
                    future = inner.submit([("GET", keys[index]) for index in positions])
                except Exception as exc:  # noqa: BLE001 - any: see `translate_errors`
                    results[at] = node.settle("get", started, probe, inner.failed(exc))
                    continue
                sent.append((at, node, inner, probe, future))
            if not sent:
                return results
            timeout = await wait_within(self.timeout, [future for *_, future in sent])
        except BaseException:  # cancelled: every part is given up, and counted as neither success nor failure
            for _, node, _, probe, future in sent:
                future.cancel()
                node.settle("get", started, probe, asyncio.CancelledError())
            raise
        for at, node, inner, probe, future in sent:
            if future.cancelled() or not future.done():  # the deadline cancels the one it was waiting on
                future.cancel()  # its replies are dropped as they arrive
                results[at] = node.settle("get", started, probe, timeout or TimeoutError())
                continue
            try:
                replies = inner.check(future.result())
            except Exception as exc:  # noqa: BLE001 - any: see `translate_errors`
                results[at] = node.settle("get", started, probe, inner.failed(exc))
                continue
            for index, value in zip(parts[at][1], replies, strict=True):
                values[index] = value
            node.settle("get", started, probe, None)
        return results

    async def _concurrently(
        self, parts: _Parts, call: Callable[[CircuitBreakerBackend, list[int]], Awaitable[None]]
    ) -> list[BaseException | None]:
        """Run `call(node, positions)` for every part, concurrently (a task per master when more than one)."""
        if len(parts) == 1:  # no task to schedule
            return [await _outcome(call(*parts[0]))]
        results = await asyncio.gather(*(call(node, positions) for node, positions in parts), return_exceptions=True)
        return [result if isinstance(result, BaseException) else None for result in results]

    # -- CacheBackend -------------------------------------------------------------------------------

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Each master's keys from that master; a failed master's keys are misses (raises only when all failed)."""
        if not keys:
            return []
        values: list[bytes | None] = [None] * len(keys)
        outcomes = await self._each_master(keys, lambda parts: self._read(keys, parts, values))
        for _, error in outcomes:
            if error is None:
                return values
        raise _as_backend_error([error for _, error in outcomes])

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return

        async def write(node: CircuitBreakerBackend, positions: list[int]) -> None:
            await node.set_many([entries[index] for index in positions])

        self._raise_failed(
            await self._each_master([entry.key for entry in entries], lambda parts: self._concurrently(parts, write))
        )

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        if not entries:
            return []
        written = [False] * len(entries)

        async def write(node: CircuitBreakerBackend, positions: list[int]) -> None:
            flags = await node.set_many_if_newer([entries[i] for i in positions], [versions[i] for i in positions])
            for index, flag in zip(positions, flags, strict=True):
                written[index] = flag

        self._raise_failed(
            await self._each_master([entry.key for entry in entries], lambda parts: self._concurrently(parts, write))
        )
        return written

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return

        async def delete(node: CircuitBreakerBackend, positions: list[int]) -> None:
            await node.delete_many([keys[index] for index in positions])

        self._raise_failed(await self._each_master(keys, lambda parts: self._concurrently(parts, delete)))

    def _raise_failed(self, outcomes: Sequence[_Outcome]) -> None:
        """Raise `CacheBackendError` when any master's part of a write failed (every other part has been applied).

        In a fence write (`FENCE_WRITE`) whose reconnects are heard (`on_node_connect`), each master that failed
        has its connection reset first, and the error is a `CacheBackendResetError`.
        """
        errors = [error for _, error in outcomes]
        if not any(errors):
            return
        error = _as_backend_error(errors)
        failed = [node for node, error in outcomes if error is not None and node is not None]
        if FENCE_WRITE.get() and self.on_node_connect is not None and len(failed) == len(errors) - errors.count(None):
            for node in failed:
                _connection(node).reset()
            raise CacheBackendResetError(f"{error} (their connections were reset)") from error
        raise error

    @override
    async def ping(self) -> None:
        """Ping every master of the slot map (never through or changing a breaker); raise if any is down."""
        with translate_errors():
            await self._slot_map()
        results = await asyncio.gather(*(node.ping() for node in self._nodes.values()), return_exceptions=True)
        errors = [result if isinstance(result, BaseException) else None for result in results]
        if any(errors):
            raise _as_backend_error(errors)

    async def open_connections(self) -> None:
        """(Re)open every master's connection (the consistency fence's probe); never fails for one master.

        A master that cannot be reached is left to its breaker, so one dead master does not stop the others
        from being fenced.

        Raises:
            CacheBackendError: No node gave a slot map.
        """
        with translate_errors():
            await self._slot_map()
        await asyncio.gather(*(node.ping() for node in self._nodes.values()), return_exceptions=True)

    async def nodes_health(self) -> list[NodeHealth]:
        """Ping every master on a connection of its own, with its breaker's state; never raises."""
        try:
            async with asyncio.timeout(self.socket_timeout * 4):
                await self._slot_map()
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            return [NodeHealth(address="?", role="master", status="down", error=type(exc).__name__)]
        return list(await asyncio.gather(*(self._node_health(address) for address in self._nodes)))

    async def _node_health(self, address: str) -> NodeHealth:
        breaker = self._nodes[address]
        inner = breaker.inner
        assert isinstance(inner, _NodeBackend)  # noqa: S101 - built by _node()
        host, _, port = address.rpartition(":")
        master = self._client.get_node(host, int(port))
        try:
            if master is None:
                raise CacheBackendError("not in the cluster client's node map")
            async with asyncio.timeout(self.socket_timeout * 2):
                # A connection of its own: a probe neither waits behind traffic nor changes the breaker.
                connection = master.connection_class(**master.connection_kwargs)
                try:
                    await connection.connect()
                    await connection.send_command("PING")
                    await connection.read_response()
                finally:
                    await connection.disconnect()
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            return NodeHealth(
                address=address, role="master", status="down", error=type(exc).__name__, breaker=breaker.state.value
            )
        return NodeHealth(address=address, role="master", status="ok", breaker=breaker.state.value)

    @override
    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for node in self._nodes.values():
            await node.close()
        self._nodes = {}
        self._slots = None
        if self._owns_client:
            self._owns_client = False
            with translate_errors():
                await self._client.aclose()


async def _outcome(call: Awaitable[Any]) -> Any:
    """What `call` returned, or raised (cancellation excepted)."""
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - handed to the caller, as `gather(return_exceptions=True)` would
        return exc


def _inner(node: CircuitBreakerBackend) -> _NodeBackend:
    inner = node.inner
    assert isinstance(inner, _NodeBackend)  # noqa: S101 - built by ClusterBackend._node()
    return inner


def _connection(node: CircuitBreakerBackend) -> MultiplexedConnection:
    return _inner(node).connection


def _retrieve_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _as_backend_error(outcomes: Sequence[BaseException | None]) -> CacheBackendError:
    errors = [outcome for outcome in outcomes if outcome is not None]
    message = "; ".join(sorted({str(error) or type(error).__name__ for error in errors}))
    return CacheBackendError(f"{len(errors)} of {len(outcomes)} masters failed: {message}")
