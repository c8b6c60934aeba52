"""Redis backend (standalone, Sentinel): MGET over a multiplexed connection, pipelined writes over a pool.

A Redis Cluster has its own backend, `app.cache.cluster.ClusterBackend`.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from typing_extensions import override

from app.cache.backend import CacheBackend, CacheBackendError
from app.cache.entry import HEADER_SIZE
from app.cache.multiplex import MultiplexedConnection
from app.cache.nodes import NodeHealth
from app.cache.sentinel import SENTINEL_SCHEME, SentinelURL

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

    from app.cache.backend import Entry

__all__ = ("SET_IF_NEWER", "RedisBackend", "translate_errors")

# Compare-and-set on the version in the entry header (`entry_header`: bytes 2-9, big endian, after the msgpack
# array marker and the uint64 marker 0xcf), so a reader that loaded an old row never replaces a newer one (an
# equal version is the same row, so it may be rewritten: that is how a refresh extends an entry).
SET_IF_NEWER = f"""
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= {HEADER_SIZE} and string.byte(cur, 2) == 207 then
  local v = 0
  for i = 3, 10 do v = v * 256 + string.byte(cur, i) end
  if v > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


@contextmanager
def translate_errors() -> Generator[None]:
    """Turn any exception but cancellation into `CacheBackendError`."""
    # Anything: redis-py, hiredis and uvloop raise more than their documented errors mid-failover (seen:
    # AttributeError from a connection closed under a pipeline, RuntimeError "handler is closed").
    try:
        yield
    except CacheBackendError:
        raise
    except Exception as exc:  # cancellation (a BaseException) passes through
        raise CacheBackendError(f"{type(exc).__name__}: {exc}") from exc


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisBackend(CacheBackend):
    """A backend on a `redis.asyncio` client (standalone, or a Sentinel's master).

    Reads (MGET) go over a `MultiplexedConnection` when one is given (`from_url` gives one to a standalone
    server): every concurrent read shares it, pipelined, with no pool checkout. Everything else, and every
    through the redis-py client and its pool.

    The caller owns a client passed to the constructor; `from_url` builds a client that the backend
    owns and closes.
    """

    __slots__ = ("_client", "_owns_client", "_reads", "_sentinel", "_set_if_newer", "chunk_size")

    name = "redis"

    def __init__(
        self,
        client: Redis,
        *,
        reads: MultiplexedConnection | None = None,
        chunk_size: int = 500,
        owns_client: bool = False,
        sentinel: Sentinel | None = None,
    ) -> None:
        """Wrap a client.

        Args:
            client: A client created with `decode_responses=False`.
            reads: A connection to the same standalone server for reads, closed with the backend.
            chunk_size: Keys per MGET / commands per pipeline round; larger batches are split.
            owns_client: Close the client in `close()`.
            sentinel: The Sentinel that `client`'s pool asks for the master (closed with an owned client).
        """
        self._client = client
        self._sentinel = sentinel
        self._reads = reads
        self._owns_client = owns_client
        self._set_if_newer = client.register_script(SET_IF_NEWER)
        self.chunk_size = chunk_size

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = 64,
        pool_timeout: float = 0.05,
        socket_timeout: float = 0.5,
        chunk_size: int = 500,
        sentinel_password: str | None = None,
    ) -> RedisBackend:
        """Build a backend with its own client (and pool). Connects lazily, on first use.

        Args:
            url: A `redis://` or `rediss://` URL, or `redis+sentinel://[user:password@]host:port[,host:port...]/
                master_name[/db]`: reads, writes and pub/sub then go to the master the sentinels name, asked
                again on every new connection, so they follow a failover.
            max_connections: Pool size.
            pool_timeout: How long a call waits for a free connection before failing.
            socket_timeout: Connect and read timeout of one command.
            chunk_size: See the constructor.
            sentinel_password: The sentinels' own password (`redis+sentinel://` only).

        Raises:
            ValueError: A malformed `redis+sentinel://` URL.
        """
        if url.startswith(f"{SENTINEL_SCHEME}:"):
            return cls._from_sentinel_url(
                SentinelURL.parse(url),
                sentinel_password=sentinel_password,
                max_connections=max_connections,
                socket_timeout=socket_timeout,
                chunk_size=chunk_size,
            )
        # One immediate retry survives a connection that died while idle; the circuit breaker handles the rest.
        pool = BlockingConnectionPool.from_url(  # pyright: ignore[reportUnknownMemberType]
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        client = Redis(connection_pool=pool)
        client.auto_close_connection_pool = True
        return cls(
            client,
            reads=MultiplexedConnection.from_url(url, timeout=socket_timeout),
            chunk_size=chunk_size,
            owns_client=True,
        )

    @classmethod
    def _from_sentinel_url(
        cls,
        parsed: SentinelURL,
        *,
        sentinel_password: str | None,
        max_connections: int,
        socket_timeout: float,
        chunk_size: int,
    ) -> RedisBackend:
        sentinel = Sentinel(
            list(parsed.sentinels),
            sentinel_kwargs={
                "password": sentinel_password,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_timeout,
            },
            db=parsed.db,
            username=parsed.username,
            password=parsed.password,
            retry=Retry(NoBackoff(), 1),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        client = sentinel.master_for(parsed.master_name, max_connections=max_connections)  # pyright: ignore[reportUnknownMemberType]
        client.auto_close_connection_pool = True

        async def master_address() -> tuple[str, int]:
            host, port = await sentinel.discover_master(parsed.master_name)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            return str(host), int(port)  # pyright: ignore[reportUnknownArgumentType]

        reads = MultiplexedConnection(
            db=parsed.db,
            username=parsed.username,
            password=parsed.password,
            timeout=socket_timeout,
            resolve=master_address,
        )
        return cls(client, reads=reads, chunk_size=chunk_size, owns_client=True, sentinel=sentinel)

    @property
    def reads(self) -> MultiplexedConnection | None:
        """The multiplexed read connection (standalone Redis), if there is one."""
        return self._reads

    @property
    def client(self) -> Redis:
        """The underlying client (for pub/sub and tests)."""
        return self._client

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        with translate_errors():
            if self._reads is not None:
                if len(keys) <= self.chunk_size:
                    return await self._reads.execute("MGET", *keys)
                chunks = await asyncio.gather(
                    *(self._reads.execute("MGET", *chunk) for chunk in _chunks(keys, self.chunk_size))
                )
                return [value for chunk_values in chunks for value in chunk_values]
            if len(keys) <= self.chunk_size:
                return cast("list[bytes | None]", await self._client.mget(keys))  # pyright: ignore[reportUnknownMemberType]
            async with self._client.pipeline(transaction=False) as pipe:
                for chunk in _chunks(keys, self.chunk_size):
                    pipe.mget(chunk)  # pyright: ignore[reportUnknownMemberType]
                results: list[list[bytes | None]] = await pipe.execute()
            return [value for chunk_values in results for value in chunk_values]

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        with translate_errors():
            for chunk in _chunks(entries, self.chunk_size):
                async with self._client.pipeline(transaction=False) as pipe:
                    for entry in chunk:
                        pipe.set(entry.key, entry.value, px=entry.ttl_ms)  # pyright: ignore[reportUnknownMemberType]
                    await pipe.execute()

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        if not entries:
            return []
        written: list[bool] = []
        with translate_errors():
            for chunk in _chunks(list(zip(entries, versions, strict=True)), self.chunk_size):
                # `async with` resets the pipeline on every exit: redis-py loads scripts outside its own
                # cleanup, so a failed SCRIPT EXISTS would otherwise leave the pipeline holding a connection.
                async with self._client.pipeline(transaction=False) as pipe:
                    for entry, version in chunk:
                        await self._set_if_newer(
                            keys=[entry.key],
                            args=[entry.value, version, entry.ttl_ms],
                            client=pipe,  # pyright: ignore[reportArgumentType]
                        )
                    results = await pipe.execute()
                written.extend(bool(result) for result in results)
        return written

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with translate_errors():
            for chunk in _chunks(keys, self.chunk_size):
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.unlink(key)  # pyright: ignore[reportUnknownMemberType]
                    await pipe.execute()

    @override
    async def ping(self) -> None:
        with translate_errors():
            await self._client.ping()  # pyright: ignore[reportUnknownMemberType, reportGeneralTypeIssues]

    async def nodes_health(self) -> list[NodeHealth]:
        """Ping the server (the master the sentinels name now) directly; never raises."""
        client = self._client
        try:
            async with asyncio.timeout(self._node_timeout()):
                if self._sentinel is not None:
                    pool = cast("SentinelConnectionPool", client.connection_pool)
                    name = cast("str", pool.service_name)  # pyright: ignore[reportUnknownMemberType]
                    host, port = await self._sentinel.discover_master(name)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
                    address = f"{host}:{port}"
                else:
                    options = client.connection_pool.connection_kwargs
                    address = options.get("path") or f"{options.get('host', '127.0.0.1')}:{options.get('port', 6379)}"
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            return [NodeHealth(address="?", role="master", status="down", error=type(exc).__name__)]
        try:
            async with asyncio.timeout(self._node_timeout()):
                await client.ping()  # pyright: ignore[reportUnknownMemberType, reportGeneralTypeIssues]
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            return [NodeHealth(address=address, role="master", status="down", error=type(exc).__name__)]
        return [NodeHealth(address=address, role="master", status="ok")]

    def _node_timeout(self) -> float:
        return 1.0 if self._reads is None else max(self._reads.timeout * 2, 0.5)

    @override
    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        if self._owns_client:
            self._owns_client = False
            with translate_errors():
                await self._client.aclose()
                if self._sentinel is not None:
                    for sentinel in self._sentinel.sentinels:  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]
                        await sentinel.aclose()  # pyright: ignore[reportUnknownMemberType]
