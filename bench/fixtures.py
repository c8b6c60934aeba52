"""The users every benchmark serves: the ten seeded ones (ids 1-10) and synthetic ones for batches."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.users.models import User
from app.users.repository import SAMPLE_USERS

__all__ = ("sample_users", "synthetic_users")

_AT = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def sample_users() -> list[User]:
    """The ten users the service seeds, as it would return them."""
    return [
        User(id=n, uuid=uuid, first_name=first, last_name=last, email=email, created_at=_AT, updated_at=_AT)
        for n, (uuid, first, last, email) in enumerate(SAMPLE_USERS, start=1)
    ]


def synthetic_users(count: int) -> list[User]:
    """`count` users with ids 1..count, shaped like the sample users."""
    return [
        User(
            id=n,
            uuid=UUID(int=n),
            first_name=f"First{n}",
            last_name=f"Last{n}",
            email=f"user{n}@example.com",
            created_at=_AT,
            updated_at=_AT,
        )
        for n in range(1, count + 1)
    ]
