"""`JsonResponse`: a 200 JSON body sent without Litestar's generic response machinery, for the hottest routes.

For every value a handler returns, Litestar builds a `Response`, then an `ASGIResponse` with mutable scope
headers, picks a serializer and computes the content-length through its header machinery: about a fifth of
the CPU of a cached `GET /users/{id}` (bench/README.md). A handler annotated `-> JsonResponse[T]` keeps `T` as
the documented 200 body (OpenAPI reads the type argument, as for `Response[T]`) and returns
`JsonResponse(value)`: one `encode_json` (Litestar's own encoder, so the bytes are the same) and two prebuilt
ASGI messages. Headers or cookies set on a layer, or a background task, take Litestar's full path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from litestar import Response
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json
from typing_extensions import override

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar import Litestar
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures import Cookie
    from litestar.enums import MediaType
    from litestar.types import Receive, Scope, Send, TypeEncodersMap

__all__ = ("JsonResponse",)

T = TypeVar("T")

_CONTENT_TYPE = (b"content-type", b"application/json")


class _JsonBody(ASGIResponse):
    """Sends one 200 response with a JSON body encoded beforehand."""

    __slots__ = ()

    def __init__(self, body: bytes) -> None:
        self.body = body

    @override
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


class JsonResponse(Response[T], Generic[T]):
    """A 200 response whose body is `content` as JSON (see the module's docstring)."""

    def __init__(self, content: T) -> None:
        """Answer `content` (anything Litestar's JSON encoder takes: a Struct, a list, a dict)."""
        self.content = content

    @override
    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        if background or cookies or encoded_headers or headers or is_head_response or type_encoders:
            # Something a layer configured: Litestar's own path, which knows how to apply it.
            return Response(self.content).to_asgi_response(  # pyright: ignore[reportUnknownMemberType]
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        return _JsonBody(encode_json(self.content))
