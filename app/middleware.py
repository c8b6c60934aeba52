"""Request ids: a pure-ASGI middleware that names each request, for the logs and the `X-Request-ID` header."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from app.logs import request_id_var

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("REQUEST_ID_HEADER", "RequestIdMiddleware", "new_request_id")

REQUEST_ID_HEADER = b"x-request-id"

# A caller's id is kept when it is a short token of safe characters (a UUID, a hex or base64 id, a trace id);
# anything else (spaces, quotes, control characters, 65+ bytes) is replaced, so it cannot forge log lines.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,63}")


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits."""
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """Set `app.logs.request_id_var` for the request and add `X-Request-ID` to its response.

    The id is the caller's `X-Request-ID` when that is a sane short token, else a new random one. A pure-ASGI
    middleware (no request object, no body wrapping): one header scan, one context variable, one header added.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (websockets get an id too; other scopes pass through)."""
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if _SANE_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
