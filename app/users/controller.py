"""`UserController`: thin HTTP handlers over `UserService`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from app.deps import user_dependencies
from app.errors import problem_responses
from app.users.models import INT64_MAX, INT64_MIN, MAX_PAGE_SIZE, User, UserPage
from app.users.service import UserService

__all__ = ("UserController",)

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
Offset = Annotated[int, Parameter(ge=0, le=INT64_MAX, description="Users to skip.")]


class UserController(Controller):
    """Read users by id, by UUID, or page by page."""

    path = "/users"
    tags = ["users"]  # noqa: RUF012 - Litestar's declared attribute type
    dependencies = user_dependencies

    @get(
        "/",
        operation_id="listUsers",
        summary="List users",
        responses=problem_responses(400),
    )
    async def list_users(
        self, user_service: NamedDependency[UserService], limit: Limit = 20, offset: Offset = 0
    ) -> UserPage:
        """Return users ordered by id, `limit` at a time."""
        users, total = await user_service.list_page(limit=limit, offset=offset)
        next_offset = offset + len(users) if offset + len(users) < total else None
        return UserPage(items=users, limit=limit, offset=offset, total=total, next_offset=next_offset)

    @get(
        "/{user_id:int}",
        operation_id="getUser",
        summary="Get a user by id",
        responses=problem_responses(400, 404),
    )
    async def get_user(self, user_id: UserIdParam, user_service: NamedDependency[UserService]) -> User:
        """Return one user, from the cache when it can."""
        return await user_service.get(user_id)

    @get(
        "/uuid/{user_uuid:uuid}",
        operation_id="getUserByUuid",
        summary="Get a user by UUID",
        responses=problem_responses(400, 404),
    )
    async def get_user_by_uuid(self, user_uuid: UserUuidParam, user_service: NamedDependency[UserService]) -> User:
        """Return one user by UUID, from the cache when it can."""
        return await user_service.get_by_uuid(user_uuid)
