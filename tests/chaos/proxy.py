"""A small asyncio TCP proxy in front of one server, which the chaos harness can cut, stall and restore.

- `cut()`: every open connection is aborted (both sides) and the listener closes, so new connections are refused;
- `stall()`: connections stay open and new ones are accepted, but no byte is forwarded in either direction
  (what a client sees of a hung server or a black-holed network path);
- `restore()`: forwarding resumes; after a cut the listener is opened again on the same port.

The proxy runs in whatever event loop starts it; the harness gives the proxies a thread and a loop of their own
(`ProxyThread`) so that the load generator's event loop never delays forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("Proxy", "ProxyThread")

T = TypeVar("T")
CHUNK = 65536


class Proxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`."""

    __slots__ = ("_connections", "_flowing", "_server", "port", "state", "target_host", "target_port")

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self.state = "open"
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> Proxy:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Abort every connection and stop listening: clients see resets, then refused connections."""
        self.state = "cut"
        self._flowing.set()  # stalled pumps wake up, see the cut and stop
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_all()

    async def stall(self) -> None:
        """Stop forwarding without closing anything."""
        self.state = "stalled"
        self._flowing.clear()

    async def restore(self) -> None:
        """Forward again; listen again if the proxy was cut."""
        was_cut = self.state == "cut"
        self.state = "open"
        self._flowing.set()
        if was_cut:
            await self.start()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self.state = "closed"
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_all()

    def _abort_all(self) -> None:
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.state in {"cut", "closed"}:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._connections.update((client_writer, upstream_writer))
        try:
            await asyncio.gather(self._pump(client_reader, upstream_writer), self._pump(upstream_reader, client_writer))
        finally:
            for writer in (client_writer, upstream_writer):
                self._connections.discard(writer)
                writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy bytes until either side closes; while stalled, hold them (TCP backpressure does the rest)."""
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                if self.state != "open":
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


class ProxyThread:
    """An event loop in a daemon thread that runs the proxies; its methods are called from any other thread."""

    __slots__ = ("_loop", "_thread")

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxies", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coroutine` in the proxies' loop and wait for its result (blocking)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def arun(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` in the proxies' loop, awaited from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def new_proxy(self, target_host: str, target_port: int) -> Proxy:
        """A started proxy to the target, living in this thread's loop."""

        async def make() -> Proxy:
            return await Proxy(target_host, target_port).start()

        return self.run(make())

    def stop(self) -> None:
        """Stop the loop (proxies still open are dropped with it)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
