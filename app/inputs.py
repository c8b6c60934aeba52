"""Strict input parsing, in front of Litestar's lenient defaults.

Litestar parses path ids with `int()` (which reads fullwidth and Arabic-Indic digits, ` 1`, a trailing newline
and `1_0`), UUIDs with `UUID()` (which reads braces, URNs and fullwidth digits), query values and JSON bodies
with msgspec's lax mode (`"1"` is an id, `1e2` is a page size), and a JSON body without a type first (so nesting
depth and bad UTF-8 raise where nothing expects them). `StrictRequest` decodes a body straight into the
handler's Struct, and `StrictInputs` (an app-level `before_request` hook) checks the raw text of every integer
and UUID parameter before the handler runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from litestar import Request, Response
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT

from app.errors import BadRequestError
from app.patterns import EMAIL_PATTERN, TEXT_PATTERN

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.handlers import HTTPRouteHandler

__all__ = ("UUID_PATTERN", "StrictInputs", "StrictRequest")

UUID_PATTERN = r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"
"""The UUID forms accepted anywhere: hyphenated or 32 hex digits, either case (what msgspec reads in bodies).
Hyphens are all present or all absent; `fullmatch` with this pattern and the check below enforce it."""

_UUID = re.compile(UUID_PATTERN)


def _is_int(text: str) -> bool:
    """`-?[0-9]+`, without a regular expression (a quarter of the cost, on every request with an id)."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def _is_uuid(text: str) -> bool:
    return _UUID.fullmatch(text) is not None and len(text) in {32, 36}


class StrictRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded straight into the handler's `data` type, strictly.

    Decoding into the type stops at the first value of the wrong kind, so nesting depth is bounded by the
    type (no `RecursionError`), a string is never taken for an integer, and bad UTF-8 is a 400 like any
    malformed JSON.
    """

    __slots__ = ()

    async def json(self) -> Any:
        """Decode the body into the handler's `data` type (untyped when the handler takes none).

        Raises:
            ValidationException: The body is not JSON, or does not match the type; `extra` names the field.
        """
        field = self.route_handler.parsed_data_field
        body = await self.body()
        decoder = _decoder(field.annotation if field is not None else Any)
        try:
            try:
                return decoder.decode(body or b"null")
            except msgspec.ValidationError as exc:
                if not str(exc).startswith(_INTEGRAL_FLOAT):
                    raise
                # JSON Schema counts 1.0 as an integer, so the published contract does too; a string never is one.
                return msgspec.convert(_integral_floats_as_ints(_decoder(Any).decode(body)), decoder.type)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$")
            message = _PATTERN_MESSAGES.get(message, message)
            name = re.match(r"\.?([A-Za-z_][A-Za-z0-9_]*)", path.rstrip("`"))
            raise ValidationException(
                detail=str(exc),
                extra=[{"key": name[1] if name else "body", "source": "body", "message": message}],
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            message = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "malformed JSON"
            if isinstance(exc, RecursionError):
                message = "nested too deeply"
            raise ValidationException(
                detail=f"body: {message}", extra=[{"key": "body", "source": "body", "message": message}]
            ) from None


_PATTERN_MESSAGES = {
    f"Expected `str` matching regex {TEXT_PATTERN!r}": "must not contain control or invisible format characters",
    f"Expected `str` matching regex {EMAIL_PATTERN!r}": (
        "must look like local@domain.tld, without spaces, control or invisible format characters"
    ),
}
"""msgspec quotes the whole pattern; these say what it means."""

_INTEGRAL_FLOAT = "Expected `int`, got `float`"


def _integral_floats_as_ints(value: Any) -> Any:
    """`value` with every float that is a whole number replaced by that int (iteratively: depth is unbounded)."""
    root = [value]
    stack: list[list[Any] | dict[Any, Any]] = [root]
    while stack:
        container = stack.pop()
        for key, item in enumerate(container) if isinstance(container, list) else container.items():
            if isinstance(item, float) and item.is_integer():
                container[key] = int(item)
            elif isinstance(item, list | dict):
                stack.append(item)  # pyright: ignore[reportUnknownArgumentType]
    return root[0]


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(annotation: Any) -> msgspec.json.Decoder[Any]:
    decoder = _DECODERS.get(annotation)
    if decoder is None:
        decoder = _DECODERS[annotation] = msgspec.json.Decoder(annotation)
    return decoder


class _Checks(msgspec.Struct, frozen=True, kw_only=True):
    """What `strict_inputs` checks for one route handler."""

    path_ints: tuple[tuple[int, str], ...] = ()
    """(segment index, parameter name) of each integer path parameter."""
    path_uuids: tuple[tuple[int, str], ...] = ()
    query_ints: tuple[str, ...] = ()
    allow: str | None = None
    """For Litestar's generated OPTIONS handler: every method of the path."""
    not_found: bool = False
    """Litestar's catch-all under the schema path, which would answer 404 in HTML."""


def _handler_checks(route: HTTPRoute, handler: HTTPRouteHandler, schema_path: str) -> _Checks:
    path_ints: list[tuple[int, str]] = []
    path_uuids: list[tuple[int, str]] = []
    for index, component in enumerate(c for c in route.path_components if not isinstance(c, str) or c.strip("/")):
        if isinstance(component, str):
            continue
        if component.type is int:
            path_ints.append((index, component.name))
        elif component.type is UUID:
            path_uuids.append((index, component.name))
    query_ints = tuple(
        (kwarg.query if isinstance(kwarg := field.kwarg_definition, ParameterKwarg) and kwarg.query else name)
        for name, field in handler.parsed_fn_signature.parameters.items()
        if field.annotation in (int, int | None) and name not in route.path_parameters
    )
    generated_options = handler.http_methods == {"OPTIONS"} and not handler.include_in_schema
    return _Checks(
        path_ints=tuple(path_ints),
        path_uuids=tuple(path_uuids),
        query_ints=query_ints,
        allow=", ".join(sorted(route.methods)) if generated_options else None,
        not_found=route.path == f"{schema_path}/{{path:str}}",
    )


class StrictInputs:
    """The app-level `before_request` hook: canonical integers and UUIDs, every method in `Allow`, problem 404s.

    Litestar parses path and query parameters before this hook runs, so the hook reads their raw text again:
    an integer is `-?[0-9]+` (the range is the parameter's own constraint), a UUID is hyphenated 8-4-4-4-12 or
    32 hex digits. It also answers Litestar's generated OPTIONS handlers itself (theirs list only the methods of
    the first handler registered on a path), and turns Litestar's HTML 404 under the schema path into a
    problem-details 404.
    """

    __slots__ = ("_checks",)

    def __init__(self) -> None:
        """Check nothing until `index` has read the app's routes."""
        self._checks: dict[int, _Checks] = {}

    def index(self, app: Litestar) -> None:
        """Read what to check from `app`'s routes; call once after the app is built."""
        schema_path = (app.openapi_config.path if app.openapi_config else None) or "/schema"
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                for handler in route.route_handlers:
                    found = _handler_checks(route, handler, schema_path)
                    if found != _Checks():
                        self._checks[id(handler)] = found

    async def __call__(self, request: Request[Any, Any, Any]) -> Response[None] | None:
        """Check `request`'s parameters.

        Raises:
            BadRequestError: An integer or UUID parameter is not in its canonical form; names the parameter.
            NotFoundException: A path under the schema path that nothing serves.
        """
        scope = request.scope
        found = self._checks.get(id(scope["route_handler"]))
        if found is None:
            return None
        if found.allow is not None:
            return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": found.allow})
        if found.not_found:
            raise NotFoundException(f"No route for {request.url.path}")
        if found.path_ints or found.path_uuids:
            _check_path(found, scope["path"])
        for name in found.query_ints:
            for value in request.query_params.getall(name, ()):
                if not _is_int(value):
                    raise _bad(name, "query", _AN_INTEGER, value)
        return None


_AN_INTEGER = "an integer (ASCII digits, optionally signed)"


def _check_path(found: _Checks, path: str) -> None:
    segments = path.strip("/").split("/")
    if "" in segments:
        segments = [segment for segment in segments if segment]
    for index, name in found.path_ints:
        if not _is_int(segments[index]):
            raise _bad(name, "path", _AN_INTEGER, segments[index])
    for index, name in found.path_uuids:
        if not _is_uuid(segments[index]):
            raise _bad(name, "path", "a UUID (8-4-4-4-12 or 32 hex digits)", segments[index])


def _bad(name: str, source: str, expected: str, text: str) -> BadRequestError:
    message = f"must be {expected}, got {text[:64]!r}"
    return BadRequestError(f"Invalid {source} parameter {name!r}: {message}", parameter=name, source=source)
