"""The user resource's msgspec Structs and their constraints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = (
    "INT64_MAX",
    "INT64_MIN",
    "MAX_PAGE_SIZE",
    "Email",
    "Name",
    "User",
    "UserPage",
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_PAGE_SIZE = 100

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="A first or last name.")]
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
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


class UserPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of users, ordered by id."""

    items: list[User]
    limit: int
    offset: int
    total: int
    next_offset: int | None
    """Offset of the next page, `null` on the last one."""
