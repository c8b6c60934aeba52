"""Redis and Redis Cluster backend: MGET over a multiplexed connection, pipelined `SET PX` over a pool."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from typing_extensions import override

from app.cache.backend import CacheBackend, CacheBackendError
from app.cache.entry import HEADER_SIZE
from app.cache.multiplex import MultiplexedConnection, RedisReplyError

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

    from app.cache.backend import Entry

__all__ = ("RedisBackend",)

# Compare-and-set on the version in the entry header (`entry_header`: bytes 2-9, big endian, after the msgpack
# array marker and the uint64 marker 0xcf), so a reader that loaded an old row never replaces a newer one (an
# equal version is the same row, so it may be rewritten: that is how a refresh extends an entry).
_SET_IF_NEWER = f"""
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
def _translate_errors() -> Generator[None]:
    try:
        yield
    except (TimeoutError, RedisError, RedisReplyError, OSError) as exc:
        raise CacheBackendError(f"{type(exc).__name__}: {exc}") from exc


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RedisBackend(CacheBackend):
    """A backend on a `redis.asyncio` client, standalone or cluster.

    Reads (MGET) go over a `MultiplexedConnection` when one is given (`from_url` gives one to a standalone
    server): every concurrent read shares it, pipelined, with no pool checkout. Everything else, and every
    call on a cluster, goes through the redis-py client and its pool.

    The caller owns a client passed to the constructor; `from_url` builds a client that the backend
    owns and closes.
    """

    __slots__ = ("_client", "_cluster", "_owns_client", "_reads", "_set_if_newer", "chunk_size")

    name = "redis"

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        reads: MultiplexedConnection | None = None,
        chunk_size: int = 500,
        owns_client: bool = False,
    ) -> None:
        """Wrap a client.

        Args:
            client: A client created with `decode_responses=False`.
            reads: A connection to the same standalone server for reads, closed with the backend.
            chunk_size: Keys per MGET / commands per pipeline round; larger batches are split.
            owns_client: Close the client in `close()`.
        """
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._reads = reads
        self._owns_client = owns_client
        self._set_if_newer = client.register_script(_SET_IF_NEWER)
        self.chunk_size = chunk_size

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        max_connections: int = 64,
        pool_timeout: float = 0.05,
        socket_timeout: float = 0.5,
        chunk_size: int = 500,
    ) -> RedisBackend:
        """Build a backend with its own client (and pool). Connects lazily, on first use.

        Args:
            url: A `redis://` or `rediss://` URL.
            cluster: Treat the URL as one node of a Redis Cluster.
            max_connections: Pool size (per node on a cluster).
            pool_timeout: How long a call waits for a free connection before failing.
            socket_timeout: Connect and read timeout of one command.
            chunk_size: See the constructor.
        """
        # One immediate retry survives a connection that died while idle; the circuit breaker handles the rest.
        retry = Retry(NoBackoff(), 1)
        client: Redis | RedisCluster
        if cluster:
            client = RedisCluster.from_url(
                url,
                max_connections=max_connections,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=retry,
            )
        else:
            pool = BlockingConnectionPool.from_url(  # pyright: ignore[reportUnknownMemberType]
                url,
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=retry,
            )
            client = Redis(connection_pool=pool)
            client.auto_close_connection_pool = True
            return cls(
                client,
                reads=MultiplexedConnection.from_url(url, timeout=socket_timeout),
                chunk_size=chunk_size,
                owns_client=True,
            )
        return cls(client, chunk_size=chunk_size, owns_client=True)

    @property
    def client(self) -> Redis | RedisCluster:
        """The underlying client (for pub/sub and tests)."""
        return self._client

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        with _translate_errors():
            if self._reads is not None:
                if len(keys) <= self.chunk_size:
                    return await self._reads.execute("MGET", *keys)
                chunks = await asyncio.gather(
                    *(self._reads.execute("MGET", *chunk) for chunk in _chunks(keys, self.chunk_size))
                )
                return [value for chunk_values in chunks for value in chunk_values]
            if self._cluster:
                return list(await self._client.mget_nonatomic(list(keys)))  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType, reportAttributeAccessIssue]
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
        with _translate_errors():
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
        with _translate_errors():
            for chunk in _chunks(list(zip(entries, versions, strict=True)), self.chunk_size):
                if self._cluster:
                    # Cluster pipelines cannot run scripts; run them concurrently instead.
                    results = await asyncio.gather(
                        *(self._set_if_newer(keys=[e.key], args=[e.value, v, e.ttl_ms]) for e, v in chunk)
                    )
                else:
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
        with _translate_errors():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.unlink(key)  # pyright: ignore[reportUnknownMemberType]
                await pipe.execute()

    @override
    async def ping(self) -> None:
        with _translate_errors():
            await self._client.ping()  # pyright: ignore[reportUnknownMemberType, reportGeneralTypeIssues]

    @override
    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        if self._owns_client:
            self._owns_client = False
            with _translate_errors():
                await self._client.aclose()
