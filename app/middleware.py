"""`RequestMiddleware`: the one pure-ASGI wrapper around the router, for request ids and HTTP metrics."""

from __future__ import annotations

import itertools
import os
import re
from time import perf_counter
from typing import TYPE_CHECKING

from app.logs import request_id_var

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from app.metrics import HttpMetrics

__all__ = ("REQUEST_ID_HEADER", "RequestIds", "RequestMiddleware")

REQUEST_ID_HEADER = b"x-request-id"

# A caller's id is kept when it is a short token of safe characters (a UUID, a hex or base64 id, a trace id);
# anything else (spaces, quotes, control characters, 65+ bytes) is replaced, so it cannot forge log lines.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,63}")


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

    Websockets get an id too.
    """

    __slots__ = ("app", "metrics", "new_request_id")

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        """Wrap `app`, counting into `metrics`."""
        self.app = app
        self.metrics = metrics
        self.new_request_id = RequestIds()

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
        if counted:
            metrics.in_progress += 1
        started = perf_counter()
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
            if counted:
                metrics.in_progress -= 1
                # The router sets `path_template` on the scope once a route matches.
                metrics.observe(scope["method"], scope.get("path_template"), status, perf_counter() - started)
