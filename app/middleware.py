"""`RequestMiddleware`: the one pure-ASGI wrapper around the router, for request ids and HTTP metrics."""

from __future__ import annotations

import itertools
import os
import re
from time import perf_counter
from typing import TYPE_CHECKING

import msgspec

from app.logs import request_id_var

if TYPE_CHECKING:
    from litestar.types import (
        ASGIApp,
        HTTPResponseBodyEvent,
        HTTPResponseStartEvent,
        Message,
        Receive,
        Scope,
        Send,
    )

    from app.metrics import HttpMetrics

__all__ = ("REQUEST_ID_HEADER", "UNBOUNDED_PATHS", "RequestIds", "RequestMiddleware", "overload_response")

REQUEST_ID_HEADER = b"x-request-id"

# A caller's id is kept when it is a short token of safe characters (a UUID, a hex or base64 id, a trace id);
# anything else (spaces, quotes, control characters, 65+ bytes) is replaced, so it cannot forge log lines.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,63}")

UNBOUNDED_PATHS = ("/health/", "/metrics")
"""Paths the in-flight bound never sheds (prefixes): probes and scrapes must see an overloaded worker as it is."""


def overload_response(retry_after: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and RFC 9457 problem-details body of the 503 a request beyond the in-flight bound gets."""
    body = msgspec.json.encode(
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": f"The server is at its limit of requests in flight; retry after {retry_after} s.",
        }
    )
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    return headers, body


class RequestIds:
    """Fresh request ids: 32 hex digits, 16 random ones per generator followed by a 16-digit counter.

    Unique without a system call per request (`os.urandom` per id cost more than the rest of the middleware).
    They identify requests in logs; they are not secrets, so being predictable within a process is fine.
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        """Draw the random part."""
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        """The next id."""
        return f"{self._prefix}{next(self._counter):016x}"


class RequestMiddleware:
    """Name each request and count it, in one wrapper (each ASGI layer costs a closure and an await per message).

    - The request id is the caller's `X-Request-ID` when that is a sane short token, else a new one. It is set in
      `app.logs.request_id_var` for the request's log lines and added to the response as `X-Request-ID`.
    - Every HTTP request is counted in `HttpMetrics`, including those no route matched (the
      middleware wraps `app.asgi_handler`, around the router): two `perf_counter` calls, the status captured
      from `http.response.start`, and a dictionary look-up.

    - Load shedding: beyond `max_in_flight` HTTP requests being served by this worker, a request is answered
      at once with 503 problem details and `Retry-After` (counted in `http_requests_shed_total`), so an
      overloaded worker keeps its latency and its database pool instead of queueing without bound. The health
      probes and `/metrics` are never shed.

    Websockets get an id too.
    """

    __slots__ = ("_overload", "app", "in_flight", "max_in_flight", "metrics", "new_request_id")

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, *, max_in_flight: int = 0, retry_after: int = 1) -> None:
        """Wrap `app`, counting into `metrics`.

        Args:
            app: The application to wrap.
            metrics: Where requests are counted.
            max_in_flight: Requests served at once before shedding; 0 for no bound.
            retry_after: Seconds in the `Retry-After` of a shed request.
        """
        self.app = app
        self.metrics = metrics
        self.new_request_id = RequestIds()
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        """HTTP requests being served that count against the bound (probes and scrapes do not)."""
        self._overload = overload_response(retry_after)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request or websocket (only HTTP requests are counted)."""
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if _SANE_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = self.new_request_id()
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # if the app fails without answering, the server answers 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        metrics = self.metrics
        counted = scope["type"] == "http"
        bounded = counted and self.max_in_flight and not scope["path"].startswith(UNBOUNDED_PATHS)
        if bounded:
            if self.in_flight >= self.max_in_flight:
                metrics.shed += 1
                await self._shed(send, header)
                return
            self.in_flight += 1
        if counted:
            metrics.in_progress += 1
        started = perf_counter()
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
            if bounded:
                self.in_flight -= 1
            if counted:
                metrics.in_progress -= 1
                # The router sets `path_template` on the scope once a route matches.
                metrics.observe(scope["method"], scope.get("path_template"), status, perf_counter() - started)

    async def _shed(self, send: Send, request_id_header: tuple[bytes, bytes]) -> None:
        headers, body = self._overload
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 503,
            "headers": [*headers, request_id_header],
        }
        await send(start)
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(end)
