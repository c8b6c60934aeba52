"""`MultiplexedConnection` against real redis-servers: ordering, cancellation, outages, a hung server, AUTH/SELECT."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import TYPE_CHECKING

import pytest
import redis

from app.cache.multiplex import MultiplexedConnection, RedisReplyError
from tests.servers import RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def connection(redis_url: str, redis_client: redis.Redis) -> AsyncIterator[MultiplexedConnection]:
    """A connection to the shared test server (flushed by `redis_client`)."""
    connection = MultiplexedConnection.from_url(redis_url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_commands_get_their_own_replies_when_many_share_the_connection(
    connection: MultiplexedConnection, redis_client: redis.Redis
) -> None:
    redis_client.mset({f"k{n}": f"v{n}" for n in range(500)})
    replies = await asyncio.gather(*(connection.execute("GET", f"k{n}") for n in range(500)))
    assert replies == [f"v{n}".encode() for n in range(500)]
    assert await connection.execute("MGET", "k1", "missing", "k2") == [b"v1", None, b"v2"]
    assert await connection.execute("SET", "n", 1) == b"OK"
    assert await connection.execute("INCRBY", "n", 41) == 42


async def test_an_error_reply_fails_only_its_own_command(connection: MultiplexedConnection) -> None:
    await connection.execute("SET", "text", "not a number")
    results = await asyncio.gather(
        connection.execute("INCR", "text"), connection.execute("GET", "text"), return_exceptions=True
    )
    assert isinstance(results[0], RedisReplyError)
    assert "not an integer" in str(results[0])
    assert results[1] == b"not a number"


async def test_cancelled_callers_do_not_shift_the_replies_of_the_others(
    connection: MultiplexedConnection, redis_client: redis.Redis
) -> None:
    redis_client.mset({f"k{n}": str(n) for n in range(200)})
    assert await connection.execute("PING") == b"PONG"  # connected, so the commands below go out at once
    tasks = [asyncio.ensure_future(connection.execute("GET", f"k{n}")) for n in range(200)]
    await asyncio.sleep(0)  # every command is written; the replies are on their way
    for task in tasks[::3]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for n, result in enumerate(results):
        if n % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == str(n).encode()
    assert await connection.execute("GET", "k7") == b"7"


async def test_submitted_batches_get_their_replies_in_one_future_and_a_dropped_one_shifts_nothing(
    connection: MultiplexedConnection, redis_client: redis.Redis
) -> None:
    redis_client.mset({f"k{n}": str(n) for n in range(30)})
    redis_client.set("text", "not a number")
    first = connection.submit([("GET", "k1"), ("GET", "k2")])  # not connected yet: connects, then sends
    assert await first == [b"1", b"2"]
    dropped = connection.submit([("GET", f"k{n}") for n in range(10)])  # written at once, on the open connection
    mixed = connection.submit([("GET", "k3"), ("INCR", "text"), ("GET", "missing")])
    single = asyncio.ensure_future(connection.execute("GET", "k4"))
    empty = connection.submit([])
    dropped.cancel()  # its replies are read and dropped
    replies = await mixed
    assert replies[0] == b"3"
    assert isinstance(replies[1], RedisReplyError)
    assert "not an integer" in str(replies[1])
    assert replies[2] is None
    assert await single == b"4"
    assert await empty == []
    assert await connection.execute("GET", "k5") == b"5"


async def test_a_restarted_server_fails_pending_commands_then_reconnects(redis_server: RedisServer) -> None:
    connection = MultiplexedConnection.from_url(redis_server.url)
    try:
        assert await connection.execute("SET", "k", "before") == b"OK"
        blocked = asyncio.ensure_future(connection.execute("BLPOP", "never", 0))
        await asyncio.sleep(0.05)
        redis_server.stop()
        with pytest.raises(ConnectionError):
            await blocked
        with pytest.raises(ConnectionError, match="cannot connect"):
            await connection.execute("GET", "k")
        redis_server.start()
        assert await connection.execute("GET", "k") is None  # a new, empty server; the same connection object
        assert await connection.execute("SET", "k", "after") == b"OK"
    finally:
        await connection.close()


async def test_a_hung_server_is_given_up_after_the_timeout(redis_server: RedisServer) -> None:
    connection = MultiplexedConnection.from_url(redis_server.url, timeout=0.2)
    try:
        assert await connection.execute("PING") == b"PONG"
        assert redis_server.process is not None
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            started = time.perf_counter()
            results = await asyncio.gather(*(connection.execute("PING") for _ in range(10)), return_exceptions=True)
            waited = time.perf_counter() - started
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        assert all(isinstance(result, ConnectionError) for result in results), results
        assert 0.15 < waited < 1.0, waited
        assert await connection.execute("PING") == b"PONG"  # reconnected
    finally:
        await connection.close()


async def test_auth_and_database_come_from_the_url() -> None:
    server = RedisServer(password="s3cret pass").start()
    try:
        url = f"redis://:s3cret%20pass@127.0.0.1:{server.port}/5"
        connection = MultiplexedConnection.from_url(url)
        try:
            assert await connection.execute("SET", "k", "in db 5") == b"OK"
        finally:
            await connection.close()
        direct = redis.Redis(host="127.0.0.1", port=server.port, password="s3cret pass", db=5)
        try:
            assert direct.get("k") == b"in db 5"
        finally:
            direct.close()
        refused = MultiplexedConnection.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(RedisReplyError, match=r"WRONGPASS|invalid"):
            await refused.execute("PING")
        await refused.close()
    finally:
        server.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    connection = MultiplexedConnection.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=5.0)
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot connect"):
        await connection.execute("PING")
    assert time.perf_counter() - started < 1.0  # refused at once, not timed out
    await connection.close()


async def test_a_connect_abandoned_by_close_is_a_connection_error_for_its_callers(redis_server: RedisServer) -> None:
    """A cluster map refresh closes a dropped node's connection while a read waits for it to connect: the read
    must fail like any connection failure (and degrade), not be cancelled (a cancelled request, then a 500)."""
    release = asyncio.Event()

    async def resolve() -> tuple[str, int]:
        await release.wait()
        return "127.0.0.1", redis_server.port

    connection = MultiplexedConnection("127.0.0.1", redis_server.port, timeout=5.0, resolve=resolve)
    reading = asyncio.ensure_future(connection.execute("PING"))
    await asyncio.sleep(0.05)  # the read waits for the connect
    await connection.close()
    with pytest.raises(ConnectionError):
        await reading
    assert not reading.cancelled()
