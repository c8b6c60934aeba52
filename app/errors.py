"""Application errors, and their mapping to RFC 9457 problem-details responses."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types.internal_types import PathParameterDefinition

from app.db import DatabaseUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar import Litestar, Request


__all__ = (
    "PROBLEM_MEDIA_TYPE",
    "ApplicationError",
    "BadRequestError",
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "ProblemDetails",
    "exception_handlers",
    "problem_responses",
)

logger = logging.getLogger("app.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_MISSING_PARAMETER = re.compile(r"Missing required (?P<source>\w+) parameter '(?P<name>[^']+)'")

_TYPE_NAMES: dict[type[Any], str] = {int: "an integer", UUID: "a UUID", float: "a number"}


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid input."""

    name: str
    """The parameter or body field, e.g. `user_id` or `email`."""
    source: str
    """Where it was: `path`, `query`, `header` or `body`."""
    message: str


class ProblemDetails(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem-details body."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list[FieldError])


class ApplicationError(Exception):
    """Base of the errors the application raises on purpose; each maps to one HTTP status."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, detail: str, *, parameter: str | None = None, source: str = "path") -> None:
        """Describe the error; `parameter` names the input it is about."""
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter
        self.source = source


class BadRequestError(ApplicationError):
    """The input is malformed in a way the framework's validation cannot express."""

    status_code = HTTPStatus.BAD_REQUEST


class NotFoundError(ApplicationError):
    """The resource does not exist."""

    status_code = HTTPStatus.NOT_FOUND


class ConflictError(ApplicationError):
    """The request conflicts with the current state (a duplicate email, say)."""

    status_code = HTTPStatus.CONFLICT


def problem(
    request: Request[Any, Any, Any], status: int, detail: str | None, errors: list[FieldError] | None = None
) -> Response[ProblemDetails]:
    """Build a problem-details response."""
    body = ProblemDetails(
        title=HTTPStatus(status).phrase, status=status, detail=detail, instance=request.url.path, errors=errors or []
    )
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """Document problem-details responses for `statuses` in OpenAPI."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails, description=HTTPStatus(status).phrase, media_type=PROBLEM_MEDIA_TYPE
        )
        for status in statuses
    }


def _unparsable_path_parameter(app: Litestar, path: str) -> tuple[PathParameterDefinition, str] | None:
    """Find the route `path` was meant for and the path parameter whose segment does not parse."""
    segments = [segment for segment in path.split("/") if segment]
    for route in app.routes:
        components = [c for c in route.path_components if not (isinstance(c, str) and not c.strip("/"))]
        if not route.path_parameters or len(components) != len(segments):
            continue
        failing: tuple[PathParameterDefinition, str] | None = None
        for component, segment in zip(components, segments, strict=True):
            if isinstance(component, str):
                if component.strip("/") != segment:
                    break
            elif component.parser is not None and failing is None:
                try:
                    component.parser(segment)
                except ValueError:
                    failing = (component, segment)
        else:
            if failing is not None:
                return failing
    return None


def _on_application_error(request: Request[Any, Any, Any], exc: ApplicationError) -> Response[ProblemDetails]:
    errors = [FieldError(name=exc.parameter, source=exc.source, message=exc.detail)] if exc.parameter else None
    return problem(request, exc.status_code, exc.detail, errors)


def _source_name(source: object) -> str:
    """`ParamType.QUERY` -> `query`; a missing source means the body."""
    return str(getattr(source, "value", source or "body"))


def _on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ProblemDetails]:
    errors: list[FieldError] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(item, dict):
                errors.append(
                    FieldError(
                        name=str(item.get("key") or "body"),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                        source=_source_name(item.get("source")),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                        message=str(item.get("message") or exc.detail),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                    )
                )
    if not errors and (missing := _MISSING_PARAMETER.search(exc.detail)):
        errors.append(FieldError(name=missing["name"], source=missing["source"], message="required"))
    detail = "; ".join(f"{e.name}: {e.message}" for e in errors) if errors else exc.detail
    return problem(request, HTTPStatus.BAD_REQUEST, f"Invalid request: {detail}", errors)


def _on_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[ProblemDetails]:
    if isinstance(exc.__cause__, ValueError):
        found = _unparsable_path_parameter(request.app, request.url.path)
        if found is not None:
            parameter, segment = found
            expected = _TYPE_NAMES.get(parameter.type, parameter.type.__name__)
            message = f"must be {expected}, got {segment[:64]!r}"
            return problem(
                request,
                HTTPStatus.BAD_REQUEST,
                f"Invalid path parameter {parameter.name!r}: {message}",
                [FieldError(name=parameter.name, source="path", message=message)],
            )
    detail = exc.detail if exc.detail != HTTPStatus.NOT_FOUND.phrase else f"No route for {request.url.path}"
    return problem(request, HTTPStatus.NOT_FOUND, detail)


def _on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ProblemDetails]:
    response = problem(request, exc.status_code, exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


# -- database faults: 503 with Retry-After, one WARNING line, no traceback --------------------------------

DATABASE_RETRY_AFTER_SECONDS = 1
"""`Retry-After` of a 503 for a database that did not answer: restarts and failovers take seconds."""


def _on_database_unavailable(
    request: Request[Any, Any, Any], exc: DatabaseUnavailableError
) -> Response[ProblemDetails]:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.reason)
    response = problem(
        request, HTTPStatus.SERVICE_UNAVAILABLE, "The database is unavailable; retry after the Retry-After delay."
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, HTTPStatus.INTERNAL_SERVER_ERROR, "An unexpected error occurred.")


exception_handlers: dict[type[Exception] | int, Callable[[Request[Any, Any, Any], Any], Response[Any]]] = {
    ApplicationError: _on_application_error,
    ValidationException: _on_validation_error,
    NotFoundException: _on_not_found,
    HTTPException: _on_http_exception,
    DatabaseUnavailableError: _on_database_unavailable,
    Exception: _on_unexpected,
}
