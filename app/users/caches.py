"""The user caches, each declared in a few lines."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from app.cache import Cache, CacheManager, CacheSpec
from app.users.models import User

__all__ = ("ID_BY_UUID", "MAPPING_VERSION", "TOMBSTONE_VERSION", "USER_BY_ID", "UserCaches")


MAPPING_VERSION = 1
"""Version of every UUID-to-id mapping. The mappings never change while a user lives (UUIDs are fixed, ids are
never reused), so one constant version is enough: a mapping (1) replaces a "not found" entry written by a
reader that looked before the user was created (0), and a delete's tombstone (2) cannot be replaced by a
reader that loaded the mapping before the delete."""

TOMBSTONE_VERSION = MAPPING_VERSION + 1


def _user_version(user: User) -> int:
    return user.version


def _mapping_version(_: object) -> int:
    return MAPPING_VERSION


USER_BY_ID = CacheSpec(
    namespace="user", key_type=int, value_type=User, version_of=_user_version, near=True, name="user_by_id"
)
"""User by id, versioned by the row version: an old row never replaces a newer cached one."""

ID_BY_UUID = CacheSpec(
    namespace="user-id-by-uuid",
    key_type=UUID,
    value_type=int,
    version_of=_mapping_version,
    near=True,
    name="id_by_uuid",
)
"""UUID to id. There is no id-to-UUID cache: the user by id holds its UUID, and nothing else would read it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCaches:
    """The typed user caches of one `CacheManager`, injected together (one provider, not two)."""

    by_id: Cache[int, User]
    id_by_uuid: Cache[UUID, int]

    @classmethod
    def of(cls, manager: CacheManager) -> UserCaches:
        """The user caches of `manager` (each built on first use, then shared)."""
        return cls(by_id=manager.cache(USER_BY_ID), id_by_uuid=manager.cache(ID_BY_UUID))
