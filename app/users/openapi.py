"""What the OpenAPI document cannot say about the users on its own: the combined limit of a lookup."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema

from app.users.models import INT64_MAX, INT64_MIN, MAX_BATCH_SIZE, UserLookup

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("refine_user_schemas",)

_INT64_FORMAT = cast("OpenAPIFormat", "int64")  # a registered OpenAPI format Litestar's enum lacks
_LOOKUP_LIMIT = f"Ids and/or UUIDs to look up: at most {MAX_BATCH_SIZE} in all (ids and UUIDs counted together)."


def refine_user_schemas(schemas: Mapping[str, Schema]) -> None:
    """Exact int64 bounds on lookup ids (Litestar drops them on list items), and the limit of `POST /users/lookup`.

    The limit goes in the description and as a `not` over every split.
    """
    lookup = schemas.get(UserLookup.__name__)
    if lookup is None:
        return
    if lookup.properties and isinstance(ids := lookup.properties.get("ids"), Schema):
        ids.items = Schema(type=OpenAPIType.INTEGER, format=_INT64_FORMAT, minimum=INT64_MIN, maximum=INT64_MAX)
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
