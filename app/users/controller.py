"""`UserController`: thin HTTP handlers over `UserService`."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter

from app.di import Injected
from app.errors import BadRequestError, problem_responses
from app.responses import JsonResponse
from app.users.models import (
    INT64_MAX,
    INT64_MIN,
    INT64_PATTERN,
    MAX_BATCH_SIZE,
    MAX_PAGE_SIZE,
    User,
    UserBatch,
    UserCreate,
    UserLookup,
    UserPage,
    UserUpdate,
)
from app.users.service import UserService

__all__ = ("UserController", "parse_id_list")

UserIdParam = Annotated[
    int,
    Parameter(
        ge=INT64_MIN,
        le=INT64_MAX,
        description="The user's id (a signed 64-bit integer).",
        # Exact bounds: Litestar would write them as floats, and 2**63 - 1 does not survive that.
        schema_extra={"format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX},
    ),
]
UserUuidParam = Annotated[UUID, Parameter(description="The user's UUID.")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description=f"Page size, 1 to {MAX_PAGE_SIZE}.")]
Offset = Annotated[
    int | None,
    Parameter(
        ge=0,
        le=INT64_MAX,
        description=(
            "Users to skip (default 0). Kept for compatibility: the database walks every skipped user, so deep "
            "offsets are slow; prefer `after`. Not with `after`."
        ),
        # Optional only to tell "absent" from 0 (or from `after`): the document says integer, not integer-or-null.
        schema_extra={
            "one_of": None,
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": INT64_MAX,
            "default": 0,
        },
    ),
]
After = Annotated[
    int | None,
    Parameter(
        ge=INT64_MIN,
        le=INT64_MAX,
        description=(
            "Cursor: start after the user with this id (the previous page's `next`); any id works, present or "
            "not. As fast at the end of the table as at the start. Not with `offset`."
        ),
        schema_extra={
            "one_of": None,
            "type": "integer",
            "format": "int64",
            "minimum": INT64_MIN,
            "maximum": INT64_MAX,
        },
    ),
]
Total = Annotated[
    bool,
    Parameter(description="Also count every user into `total` (a scan of the table: slow on a large one)."),
]
IdList = Annotated[
    str,
    Parameter(
        description=f"Comma-separated user ids (signed 64-bit integers), 1 to {MAX_BATCH_SIZE}.",
        schema_extra={
            "pattern": rf"^{INT64_PATTERN}(,{INT64_PATTERN}){{0,{MAX_BATCH_SIZE - 1}}}$",
            "example": "1,2,3",
        },
    ),
]

_DIGITS = re.compile(r"-?[0-9]+")


def parse_id_list(text: str, *, parameter: str = "ids") -> list[int]:
    """Parse `1,2,3` into ids: each one written as `GET /users/{user_id}` accepts it.

    Raises:
        BadRequestError: An item is not a signed 64-bit integer in ASCII digits, or there are none or too many.
    """
    items = text.split(",")
    if len(items) > MAX_BATCH_SIZE:
        raise BadRequestError(
            f"{parameter}: at most {MAX_BATCH_SIZE} ids, got {len(items)}", parameter=parameter, source="query"
        )
    ids: list[int] = []
    for item in items:
        if not _DIGITS.fullmatch(item) or not INT64_MIN <= (value := int(item)) <= INT64_MAX:
            raise BadRequestError(
                f"{parameter}: expected comma-separated signed 64-bit integers, got {item[:32]!r}",
                parameter=parameter,
                source="query",
            )
        ids.append(value)
    return ids


class UserController(Controller):
    """Users: read by id, by UUID, in batches or page by page; create, update, delete."""

    path = "/users"
    tags = ["users"]  # noqa: RUF012 - Litestar's declared attribute type

    @get("/", operation_id="listUsers", summary="List users", responses=problem_responses(400))
    async def list_users(
        self,
        user_service: Injected[UserService],
        limit: Limit = 20,
        after: After = None,
        offset: Offset = None,
        total: Total = False,
    ) -> UserPage:
        """Return users ordered by id, `limit` at a time: walk with `after` = the previous page's `next`."""
        if after is not None and offset is not None:
            raise BadRequestError("after: cannot be combined with offset", parameter="after", source="query")
        users, more, count = await user_service.list_page(limit=limit, after=after, offset=offset, total=total)
        last = users[-1].id if more else None
        if after is not None:
            return UserPage(items=users, limit=limit, next=last, offset=None, next_offset=None, total=count)
        start = offset or 0
        next_offset = start + len(users) if more else None
        return UserPage(items=users, limit=limit, next=last, offset=start, next_offset=next_offset, total=count)

    @get("/{user_id:int}", operation_id="getUser", summary="Get a user by id", responses=problem_responses(400, 404))
    async def get_user(self, user_id: UserIdParam, user_service: Injected[UserService]) -> JsonResponse[User]:
        """Return one user, from the cache when it can."""
        return JsonResponse(await user_service.get(user_id))

    @get(
        "/uuid/{user_uuid:uuid}",
        operation_id="getUserByUuid",
        summary="Get a user by UUID",
        responses=problem_responses(400, 404),
    )
    async def get_user_by_uuid(
        self, user_uuid: UserUuidParam, user_service: Injected[UserService]
    ) -> JsonResponse[User]:
        """Return one user by UUID, from the cache when it can."""
        return JsonResponse(await user_service.get_by_uuid(user_uuid))

    @get("/batch", operation_id="getUsersBatch", summary="Get users by ids", responses=problem_responses(400))
    async def get_batch(self, ids: IdList, user_service: Injected[UserService]) -> JsonResponse[UserBatch]:
        """Return the users among `ids` (one cache round trip, one query for the misses); unknown ids are listed."""
        return JsonResponse(await user_service.lookup(ids=parse_id_list(ids)))

    @post(
        "/lookup",
        operation_id="lookupUsers",
        summary="Get users by ids and UUIDs",
        description=f"Ids and/or UUIDs, at most {MAX_BATCH_SIZE} in all; unknown ones are listed, not errors.",
        status_code=200,
        responses=problem_responses(400, 413),
    )
    async def lookup(self, data: JSONBody[UserLookup], user_service: Injected[UserService]) -> UserBatch:
        """Return the users among `ids` and `uuids` (at most 100 in all); unknown ones are listed, not errors."""
        if len(data.ids) + len(data.uuids) > MAX_BATCH_SIZE:
            raise BadRequestError(f"ids, uuids: at most {MAX_BATCH_SIZE} in all", parameter="ids", source="body")
        return await user_service.lookup(ids=data.ids, uuids=data.uuids)

    @post("/", operation_id="createUser", summary="Create a user", responses=problem_responses(400, 409, 413))
    async def create_user(self, data: JSONBody[UserCreate], user_service: Injected[UserService]) -> Response[User]:
        """Create a user; the server assigns `id` and `uuid`. The `Location` header points at it."""
        user = await user_service.create(data)
        return Response(user, status_code=201, headers={"Location": f"/users/{user.id}"})

    @patch(
        "/{user_id:int}",
        operation_id="updateUser",
        summary="Update a user",
        responses=problem_responses(400, 404, 409, 413),
    )
    async def update_user(
        self, user_id: UserIdParam, data: JSONBody[UserUpdate], user_service: Injected[UserService]
    ) -> User:
        """Change some of a user's names and email; `version` goes up by one."""
        return await user_service.update(user_id, data)

    @delete("/{user_id:int}", operation_id="deleteUser", summary="Delete a user", responses=problem_responses(400, 404))
    async def delete_user(self, user_id: UserIdParam, user_service: Injected[UserService]) -> None:
        """Delete a user (204)."""
        await user_service.delete(user_id)
