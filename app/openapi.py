"""Corrections to the OpenAPI document Litestar generates, so clients (and fuzzers) see the real contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar import Litestar

    from app.domain import Domain

__all__ = ("refine_openapi",)

_INT64_FORMAT = cast("OpenAPIFormat", "int64")  # a registered OpenAPI format Litestar's enum lacks
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _exact_int64_bounds(node: Any) -> None:
    """Litestar writes integer bounds as floats; +-2**63 as a float is one past the int64 range."""
    if isinstance(node, Schema):
        if node.type is OpenAPIType.INTEGER and isinstance(node.maximum, float) and node.maximum >= 2**63:
            node.maximum, node.minimum, node.format = INT64_MAX, INT64_MIN, _INT64_FORMAT
        for child in (*(node.properties or {}).values(), node.items):
            _exact_int64_bounds(child)


def refine_openapi(app: Litestar, domains: Sequence[Domain]) -> None:
    """Fix what Litestar's generator cannot express.

    - `additionalProperties: false` on every domain's closed request bodies (`Domain.closed_bodies`);
    - exact signed 64-bit bounds on ids (Litestar writes bounds as floats);
    - whatever each domain's `refine_openapi` adds.
    """
    schemas = app.openapi_schema.components.schemas or {}
    for domain in domains:
        for struct in domain.closed_bodies:
            if struct.__struct_config__.forbid_unknown_fields and struct.__name__ in schemas:
                schemas[struct.__name__].additional_properties = False
    for schema in schemas.values():
        _exact_int64_bounds(schema)
    for domain in domains:
        if domain.refine_openapi is not None:
            domain.refine_openapi(schemas)
