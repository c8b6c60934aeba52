"""The user caches, each declared in a few lines."""

from __future__ import annotations

from uuid import UUID

from app.cache import CacheSpec
from app.users.models import User

__all__ = ("ID_BY_UUID", "USER_BY_ID", "UUID_BY_ID")


def _user_version(user: User) -> int:
    return user.version


USER_BY_ID = CacheSpec(namespace="user", key_type=int, value_type=User, version_of=_user_version)
"""User by id, versioned: a reader holding an old row can never replace a newer cached one."""

ID_BY_UUID = CacheSpec(namespace="user-id-by-uuid", key_type=UUID, value_type=int)
"""UUID to id. A user's UUID never changes and ids are never reused, so the mapping needs no version."""

UUID_BY_ID = CacheSpec(namespace="user-uuid-by-id", key_type=int, value_type=UUID)
"""Id to UUID, the reverse mapping."""
