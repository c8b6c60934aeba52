"""Read timeouts uvicorn lacks: a connection that does not send a request's headers (or body) in time is closed.

uvicorn (0.54) bounds only the idle time between requests (`timeout_keep_alive`, armed after a response): a
connection that never sends a byte, or sends half a request line and stops, is kept open forever, and so is a
request whose body stops arriving. `TimedHttpToolsProtocol` adds the two timers on top of uvicorn's httptools
protocol; granian has the header timeout built in (`HTTP1Settings.header_read_timeout`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from typing_extensions import override
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from app.config import Settings

__all__ = ("TimedHttpToolsProtocol", "uvicorn_protocol")


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header read timeout and a body read timeout.

    - Header timeout: armed when the connection opens and when a new request begins on a kept-alive one; a
      connection whose request headers are not complete when it fires is closed.
    - Body timeout: armed when the headers are complete; a request whose body is not complete when it fires is
      dropped: the connection is closed and the application's `receive()` answers `http.disconnect`.
    """

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        """Take uvicorn's arguments, and the two timeouts in seconds."""
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._deadline: float | None = None
        """When the connection is closed unless the current read completes; `None` while no read is timed."""
        self._timer: asyncio.TimerHandle | None = None

    # The timers are lazy: a request only moves `_deadline` (a float); the one timer per connection wakes at the
    # deadline it was set for and, if the deadline moved meanwhile, sleeps again until the new one. Creating and
    # cancelling a loop timer for every request cost more than the rest of this class (bench/README.md).

    def _arm(self, seconds: float) -> None:
        deadline = self._deadline = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        deadline = self._deadline
        if deadline is None:  # no read is being timed: the next `_arm` starts a timer again
            self._timer = None
        elif self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._check)
        else:
            self._timer = None
            if not self.transport.is_closing():
                self.transport.close()

    @override
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._header_timeout)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    @override
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the first request keeps the deadline armed when the connection opened
            self._arm(self._header_timeout)

    @override
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self._body_timeout)

    @override
    def on_message_complete(self) -> None:
        self._deadline = None
        super().on_message_complete()


def uvicorn_protocol(settings: Settings) -> functools.partial[TimedHttpToolsProtocol]:
    """The `http=` argument of `uvicorn.run`: the protocol with the settings' timeouts (picklable for workers)."""
    return functools.partial(
        TimedHttpToolsProtocol,
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
    )
