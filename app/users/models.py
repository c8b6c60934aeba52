"""The user resource's msgspec Structs and their constraints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = (
    "INT64_MAX",
    "INT64_MIN",
    "MAX_BATCH_SIZE",
    "MAX_PAGE_SIZE",
    "Email",
    "Name",
    "User",
    "UserBatch",
    "UserCreate",
    "UserLookup",
    "UserPage",
    "UserUpdate",
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_PAGE_SIZE = 100
MAX_BATCH_SIZE = 100

Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="A first or last name: 1 to 100 characters, no control characters.",
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        # No spaces or control characters; `\s` is not used because Python and ECMAScript disagree on it.
        pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$",
        description="An email address (at most 254 characters).",
        examples=["ada@example.com"],
    ),
]
UserId = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A user, as stored and as cached."""

    id: UserId
    uuid: UUID
    first_name: Name
    last_name: Name
    email: Email
    version: Annotated[int, msgspec.Meta(ge=1, description="Incremented on every update.")] = 1
    created_at: datetime
    updated_at: datetime


class UserCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /users`; the server assigns `id`, `uuid`, `version` and the timestamps."""

    first_name: Name
    last_name: Name
    email: Email


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `PATCH /users/{user_id}`: the fields to change; absent fields keep their value."""

    first_name: Name | msgspec.UnsetType = msgspec.UNSET
    last_name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, str]:
        """The fields that are set, by column name."""
        return {field: value for field in self.__struct_fields__ if isinstance(value := getattr(self, field), str)}


UserIds = Annotated[list[UserId], msgspec.Meta(max_length=MAX_BATCH_SIZE)]
UserUuids = Annotated[list[UUID], msgspec.Meta(max_length=MAX_BATCH_SIZE)]


class UserLookup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /users/lookup`: ids and/or UUIDs, at most `MAX_BATCH_SIZE` in all."""

    ids: UserIds = msgspec.field(default_factory=list[int])
    uuids: UserUuids = msgspec.field(default_factory=list[UUID])


class UserBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Users found by a batch read, in request order, and the ids and UUIDs that matched nobody."""

    users: list[User]
    missing_ids: list[int] = msgspec.field(default_factory=list[int])
    missing_uuids: list[UUID] = msgspec.field(default_factory=list[UUID])


class UserPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of users, ordered by id."""

    items: list[User]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    """Offset of the next page, `null` on the last one."""
