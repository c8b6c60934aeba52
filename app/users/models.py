"""The user resource's msgspec Structs and their constraints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.patterns import EMAIL_PATTERN, TEXT_PATTERN

__all__ = (
    "EMAIL_PATTERN",
    "INT64_MAX",
    "INT64_MIN",
    "INT64_PATTERN",
    "MAX_BATCH_SIZE",
    "MAX_PAGE_SIZE",
    "TEXT_PATTERN",
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


def _at_most(bound: int) -> str:
    """A regular expression for the decimal numbers from 0 to `bound` (leading zeros allowed)."""
    digits = str(bound)
    alternatives = [f"[0-9]{{1,{len(digits) - 1}}}"]
    for index, digit in enumerate(int(d) for d in digits):
        if digit:
            rest = len(digits) - index - 1
            alternatives.append(digits[:index] + (f"[0-{digit - 1}]" if digit > 1 else "0") + f"[0-9]{{{rest}}}")
    alternatives.append(digits)
    return "0*(?:" + "|".join(alternatives) + ")"


INT64_PATTERN = f"(?:{_at_most(INT64_MAX)}|-{_at_most(-INT64_MIN)})"
"""Exactly the decimal texts of signed 64-bit integers (ASCII digits, optional minus, leading zeros allowed):
the one rule for an id, in a path, in `?ids=` and in the OpenAPI document."""


Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=TEXT_PATTERN,
        description="A first or last name: 1 to 100 characters, no control or invisible format characters.",
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        # No spaces, control or format characters; `\s` is not used because Python and ECMAScript disagree on it.
        pattern=EMAIL_PATTERN,
        description="An email address (at most 254 characters; no spaces, control or invisible format characters).",
        examples=["ada@example.com"],
    ),
]
UserId = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class User(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A user, as stored and as cached.

    `gc=False`: its fields are scalars, so it can never be part of a reference cycle, and the garbage collector
    need not track it (a near cache of 100,000 users is then 100,000 objects fewer for every full collection).
    """

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
    """The body of `POST /users/lookup`: ids and/or UUIDs, at most `MAX_BATCH_SIZE` (100) in all."""

    ids: UserIds = msgspec.field(default_factory=list[int])
    uuids: UserUuids = msgspec.field(default_factory=list[UUID])


class UserBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Users found by a batch read, in request order, and the ids and UUIDs that matched nobody."""

    users: list[User]
    missing_ids: list[int] = msgspec.field(default_factory=list[int])
    missing_uuids: list[UUID] = msgspec.field(default_factory=list[UUID])


class UserPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of users, ordered by id.

    Walk with the cursor: pass `next` back as `?after=` until it is `null`. `offset` and `next_offset` remain for
    clients that page by offset (slower deep in the table); `total` is counted only when asked for.
    """

    items: list[User]
    limit: int
    next: Annotated[
        int | None,
        msgspec.Meta(
            description="The id of this page's last user: pass it as `after` for the next page; `null` on the last."
        ),
    ]
    offset: Annotated[
        int | None, msgspec.Meta(description="The offset of this page; `null` on a page asked for with `after`.")
    ]
    next_offset: Annotated[
        int | None,
        msgspec.Meta(
            description="The offset of the next page; `null` on the last page and on pages asked for with `after`."
        ),
    ]
    total: Annotated[
        int | None,
        msgspec.Meta(
            description="How many users there are, only with `?total=true` (it counts the table); else `null`."
        ),
    ]
