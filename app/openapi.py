"""Corrections to the OpenAPI document Litestar generates, so clients (and fuzzers) see the real contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from app.users.models import INT64_MAX, INT64_MIN, MAX_BATCH_SIZE, UserCreate, UserLookup, UserUpdate

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ("refine_openapi",)

_CLOSED_BODIES = (UserCreate, UserUpdate, UserLookup)
_INT64_FORMAT = cast("OpenAPIFormat", "int64")  # a registered OpenAPI format Litestar's enum lacks


_LOOKUP_LIMIT = f"Ids and/or UUIDs to look up: at most {MAX_BATCH_SIZE} in all (ids and UUIDs counted together)."


def _int64() -> Schema:
    return Schema(type=OpenAPIType.INTEGER, format=_INT64_FORMAT, minimum=INT64_MIN, maximum=INT64_MAX)


def _exact_int64_bounds(node: Any) -> None:
    """Litestar writes integer bounds as floats; +-2**63 as a float is one past the int64 range."""
    if isinstance(node, Schema):
        if node.type is OpenAPIType.INTEGER and isinstance(node.maximum, float) and node.maximum >= 2**63:
            node.maximum, node.minimum, node.format = INT64_MAX, INT64_MIN, _INT64_FORMAT
        for child in (*(node.properties or {}).values(), node.items):
            _exact_int64_bounds(child)


def refine_openapi(app: Litestar) -> None:
    """Fix what Litestar's generator cannot express.

    - `additionalProperties: false` on request bodies whose Struct has `forbid_unknown_fields`;
    - exact signed 64-bit bounds on ids (Litestar writes bounds as floats and drops them on list items);
    - the combined limit of `POST /users/lookup`, in its description and as a `not` over every split.
    """
    schemas = app.openapi_schema.components.schemas or {}
    for struct in _CLOSED_BODIES:
        if struct.__struct_config__.forbid_unknown_fields and struct.__name__ in schemas:
            schemas[struct.__name__].additional_properties = False
    for schema in schemas.values():
        _exact_int64_bounds(schema)
    lookup = schemas.get(UserLookup.__name__)
    if lookup is not None and lookup.properties and isinstance(ids := lookup.properties.get("ids"), Schema):
        ids.items = _int64()
    if lookup is not None:
        lookup.description = _LOOKUP_LIMIT
        lookup.schema_not = _more_than_in_all(MAX_BATCH_SIZE)


def _more_than_in_all(limit: int) -> Schema:
    """Bodies with more than `limit` ids and UUIDs together, for `not`.

    JSON Schema cannot add up two lengths, so this lists every split of `limit + 1` items between the two lists:
    machine-checkable, unlike prose, so fuzzers and validators know the limit too.
    """
    return Schema(
        any_of=[
            Schema(
                required=["ids", "uuids"],
                properties={"ids": Schema(min_items=k), "uuids": Schema(min_items=limit + 1 - k)},
            )
            for k in range(1, limit + 1)
        ]
    )
