"""One Redis connection that every caller shares: commands are pipelined, replies matched to callers in order.

redis-py checks a connection out of its pool for every command and reads the reply through an asyncio stream;
on the cache-hit path that bookkeeping cost more than our whole cache layer (bench/README.md). Here a command
is one `transport.write` and a future: replies arrive in the order the commands were sent (the RESP
guarantee for one connection), so `data_received` feeds them to hiredis and resolves the waiting futures
first to last. Any number of callers share the connection without locks, and a cancelled caller leaves only
a reply that is read and dropped, so cancellation never desynchronises the connection.

The connection opens lazily (AUTH and SELECT from the URL), and when it drops every pending caller gets a
`ConnectionError` and the next command opens a new one. A connection that has commands pending but
receives nothing for `timeout` seconds is considered dead and closed, so even a caller without its own
deadline cannot wait forever on a hung server.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast, final

import hiredis
from redis.asyncio import ConnectionPool, SSLConnection
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ("MultiplexedConnection", "RedisReplyError")

_NO_REPLY = object()
"""What `hiredis.Reader.gets` returns while no complete reply is buffered."""


def pack_command(args: Sequence[str | bytes | int | float]) -> bytes:
    """Encode one command in RESP (hiredis, in C)."""
    return cast("bytes", hiredis.pack_command(tuple(args)))  # pyright: ignore[reportUnknownMemberType, reportArgumentType]


_pack_tuple = cast("Callable[[tuple[str | bytes | int | float, ...]], bytes]", hiredis.pack_command)  # pyright: ignore[reportUnknownMemberType]
"""`pack_command` without a Python call around it, for a command that is a tuple already (one per key in a batch)."""


class RedisReplyError(Exception):
    """Redis answered a command with an error reply (`-ERR ...`)."""


@final
class _Batch:
    """The replies of a pipeline sent with `send_batch`: one future for all of them, resolved with the last."""

    __slots__ = ("count", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.count = count
        self.replies: list[Any] = []


class _Protocol(asyncio.Protocol):
    """The socket side: write commands, parse replies, resolve the callers' futures in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._reader = hiredis.Reader(notEnoughData=_NO_REPLY)
        self._waiters: deque[asyncio.Future[Any] | _Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._last_progress = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self.error: Exception | None = None
        """Why the connection is unusable; `None` while it is open."""

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_progress = time.monotonic()
        reader = self._reader
        waiters = self._waiters
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not _NO_REPLY:
                waiter = waiters[0]  # IndexError: a reply nobody asked for
                if type(waiter) is _Batch:
                    replies = waiter.replies
                    replies.append(RedisReplyError(str(reply)) if isinstance(reply, hiredis.ReplyError) else reply)
                    if len(replies) == waiter.count:
                        waiters.popleft()
                        if not waiter.future.done():  # else its caller gave up: the replies are dropped
                            waiter.future.set_result(replies)
                    continue
                waiters.popleft()
                if waiter.done():  # its caller was cancelled: the reply is read and dropped
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    waiter.set_exception(RedisReplyError(str(reply)))
                else:
                    waiter.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.abort(ConnectionError(f"Redis protocol error: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Redis lost: {exc}" if exc else "connection to Redis closed"))

    # -- commands ------------------------------------------------------------------------------------

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Write one packed command; the future resolves to its reply."""
        if self.error is not None:
            raise ConnectionError(str(self.error))
        waiter = self._loop.create_future()
        if not self._waiters:
            self._start_timing()
        self._waiters.append(waiter)
        self._transport.write(packed)  # type: ignore[union-attr]
        return waiter

    def send_many(self, packed: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Write several packed commands in one write (a pipeline); one future per command, in order."""
        if self.error is not None:
            raise ConnectionError(str(self.error))
        loop = self._loop
        waiters = [loop.create_future() for _ in packed]
        if not self._waiters:
            self._start_timing()
        self._waiters.extend(waiters)
        self._transport.write(b"".join(packed))  # type: ignore[union-attr]
        return waiters

    def send_batch(self, packed: Sequence[bytes]) -> asyncio.Future[list[Any]]:
        """Write several packed commands in one write; one future for all their replies, in order.

        An error reply is a `RedisReplyError` in its place. Cheaper than `send_many` for a caller that needs
        every reply anyway: one future, resolved when the last reply arrives.
        """
        if self.error is not None:
            raise ConnectionError(str(self.error))
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not packed:  # a batch waiting for no reply would take the next command's
            future.set_result([])
            return future
        if not self._waiters:
            self._start_timing()
        self._waiters.append(_Batch(future, len(packed)))
        self._transport.write(b"".join(packed))  # type: ignore[union-attr]
        return future

    def _start_timing(self) -> None:
        """The first command in flight: progress is timed from now, by the watchdog (started if not running)."""
        self._last_progress = time.monotonic()
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_progress)

    def abort(self, error: Exception) -> None:
        """Close the connection at once; pending and later callers get `error`."""
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def _check_progress(self) -> None:
        self._watchdog = None
        if not self._waiters or self.error is not None:
            return
        idle = time.monotonic() - self._last_progress
        if idle >= self._timeout:
            self.abort(ConnectionError(f"Redis sent nothing for {idle * 1000:.0f} ms with commands pending"))
        else:
            self._watchdog = self._loop.call_later(self._timeout - idle, self._check_progress)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        message = str(self.error)
        while self._waiters:
            waiter = self._waiters.popleft()
            if type(waiter) is _Batch:
                waiter = waiter.future
            if not waiter.done():  # one exception object per caller: a shared one would collect every traceback
                waiter.set_exception(ConnectionError(message))


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Mark a failed connect seen even when every caller waiting for it had given up already."""
    if not future.cancelled():
        future.exception()


class MultiplexedConnection:
    """A lazily opened Redis connection shared by all callers (see the module docstring)."""

    __slots__ = (
        "_connecting",
        "_handshake",
        "_protocol",
        "_resolve",
        "_ssl",
        "_target",
        "connects",
        "on_connect",
        "timeout",
    )

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 0.5,
        resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None,
    ) -> None:
        """Describe the connection; nothing connects until the first command.

        Args:
            host: Server host (TCP).
            port: Server port (TCP).
            path: A Unix socket path instead of host and port.
            db: Database number (`SELECT`ed after connecting).
            username: ACL user (`AUTH username password`); `None` for the default user.
            password: `AUTH` password; `None` for none.
            ssl_context: TLS when given.
            timeout: Seconds a connect may take, and seconds without any reply while commands are pending
                before the connection is considered dead.
            resolve: Asked for the address (instead of `host` and `port`) before every connect, within
                `timeout`: a Sentinel's current master, so a reconnect follows a failover.
        """
        self._target = (host, port, path)
        self._resolve = resolve
        self._ssl = ssl_context
        self.timeout = timeout
        handshake: list[bytes] = []
        if password is not None:
            handshake.append(pack_command(["AUTH", password] if username is None else ["AUTH", username, password]))
        if db:
            handshake.append(pack_command(["SELECT", db]))
        self._handshake = handshake
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self.connects = 0
        """Connections opened so far: a Redis restart or failover always means a new one."""
        self.on_connect: Callable[[], None] | None = None
        """Called when a connection opens, before any reply read on it is handed out (the consistency fence's
        `revoke`: what a new server holds is not trusted until it has been fenced)."""

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.5) -> MultiplexedConnection:
        """Parse a `redis://`, `rediss://` or `unix://` URL the way redis-py does."""
        # redis-py's public URL parsing (a pool connects only when used) and its TLS settings from ssl_* options.
        pool = ConnectionPool.from_url(url)  # pyright: ignore[reportUnknownMemberType]
        return cls.from_options(pool.connection_class, pool.connection_kwargs, timeout=timeout)

    @classmethod
    def from_options(
        cls, connection_class: type[AbstractConnection], options: dict[str, Any], *, timeout: float = 0.5
    ) -> MultiplexedConnection:
        """Connect where a redis-py connection of `connection_class` built from `options` would.

        TLS is verified the same way. `options` are a pool's, or a cluster node's `connection_kwargs`.
        """
        ssl_context = None
        if issubclass(connection_class, SSLConnection):
            ssl_context = cast("ssl.SSLContext", SSLConnection(**options).ssl_context.get())  # pyright: ignore[reportUnknownMemberType]
        return cls(
            options.get("host", "127.0.0.1"),
            int(options.get("port", 6379)),
            path=options.get("path"),
            db=int(options.get("db", 0)),
            username=options.get("username"),
            password=options.get("password"),
            ssl_context=ssl_context,
            timeout=timeout,
        )

    async def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply.

        Raises:
            ConnectionError: Could not connect, or the connection dropped or stalled before the reply.
            RedisReplyError: Redis answered with an error.
        """
        protocol = self._protocol
        if protocol is None or protocol.error is not None:
            protocol = await self._connect()
        return await protocol.send(pack_command(args))

    async def pipeline(self, commands: Sequence[Sequence[str | bytes | int | float]]) -> list[Any]:
        """Send several commands in one write and return their replies in order.

        An error reply is returned as a `RedisReplyError` in its place, not raised.

        Raises:
            ConnectionError: Could not connect, or the connection dropped or stalled before the last reply.
        """
        protocol = self._protocol
        if protocol is None or protocol.error is not None:
            protocol = await self._connect()
        waiters = protocol.send_many([pack_command(command) for command in commands])
        replies: list[Any] = []
        try:
            for waiter in waiters:
                try:  # replies arrive in order: once the first is in, the others mostly are too
                    replies.append(await waiter)
                except RedisReplyError as exc:
                    replies.append(exc)
        except BaseException:
            for waiter in waiters:  # a dropped connection failed them all, or the caller was cancelled
                if not waiter.done():
                    waiter.cancel()  # its reply is read and dropped
                elif not waiter.cancelled():
                    waiter.exception()
            raise
        return replies

    def submit(self, commands: Sequence[Sequence[str | bytes | int | float]]) -> asyncio.Future[list[Any]]:
        """Send several commands in one write now, without waiting; the future resolves to their replies in order.

        What `pipeline` returns, but the commands are written before this returns (on an open connection; else
        a task connects first and sends them), so a caller can send to several servers, then wait for all of
        them at once. Cancelling the future drops its replies. It fails with `ConnectionError` as `pipeline` raises.
        """
        protocol = self._protocol
        if protocol is None or protocol.error is not None:
            return asyncio.ensure_future(self.pipeline(commands))
        return protocol.send_batch([_pack_tuple(tuple(command)) for command in commands])

    async def _connect(self) -> _Protocol:
        # One connect at a time: callers that arrive meanwhile wait for it rather than opening their own, and
        # one whose deadline passes leaves it running for the others (a finished attempt is never reused).
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = self._connecting = asyncio.ensure_future(self._open())
            connecting.add_done_callback(_retrieve_exception)
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if connecting.cancelled() and (task is None or not task.cancelling()):
                # `close` abandoned the connect (e.g. a cluster map refresh dropped the node), not our caller:
                # a connection error, which degrades like any other, not a cancellation of the request.
                raise ConnectionError("connect abandoned: the connection was closed") from None
            raise

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        host, port, path = self._target
        protocol = _Protocol(loop, self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                if self._resolve is not None:
                    host, port = await self._resolve()
                if path is not None:
                    await loop.create_unix_connection(lambda: protocol, path, ssl=self._ssl)
                else:
                    await loop.create_connection(lambda: protocol, host, port, ssl=self._ssl)
                await asyncio.gather(*(protocol.send(command) for command in self._handshake))  # OK, or raises
        except TimeoutError as exc:
            protocol.abort(ConnectionError("connect timed out"))
            raise ConnectionError(f"connecting to Redis timed out after {self.timeout * 1000:.0f} ms") from exc
        except (OSError, RedisError) as exc:
            raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
        except RedisReplyError:
            protocol.abort(ConnectionError("handshake refused"))
            raise
        self.connects += 1
        if self.on_connect is not None:
            self.on_connect()
        self._protocol = protocol
        return protocol

    @property
    def connected(self) -> bool:
        """Whether a connection is open (the next command does not open one)."""
        return self._protocol is not None and self._protocol.error is None

    def reset(self) -> None:
        """Drop the open connection (pending callers get `ConnectionError`); the next command opens a new one.

        A connect under way is left to finish: like any later one, it calls `on_connect` before its first reply.
        """
        if self._protocol is not None:
            self._protocol.abort(ConnectionError("connection reset by the client"))
            self._protocol = None

    async def close(self) -> None:
        """Close the connection; pending callers get `ConnectionError`. A later command reconnects."""
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._protocol is not None:
            self._protocol.abort(ConnectionError("connection closed by the client"))
            self._protocol = None
