"""`UserService`: the only place that combines the user caches and the repository."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from app.cache import Cache
    from app.users.models import User
    from app.users.repository import UserRepository

__all__ = ("UserService",)


class UserService:
    """Cache-aside reads of users: caches first, the database for misses, absent users cached briefly."""

    __slots__ = ("id_by_uuid", "repository", "user_by_id", "uuid_by_id")

    def __init__(
        self,
        *,
        repository: UserRepository,
        user_by_id: Cache[int, User],
        id_by_uuid: Cache[UUID, int],
        uuid_by_id: Cache[int, UUID],
    ) -> None:
        """Combine a repository with the user caches."""
        self.repository = repository
        self.user_by_id = user_by_id
        self.id_by_uuid = id_by_uuid
        self.uuid_by_id = uuid_by_id

    async def _load_by_id(self, ids: list[int]) -> dict[int, User]:
        users = await self.repository.get_many_by_id(ids)
        if users:
            await self.uuid_by_id.set_many({user.id: user.uuid for user in users.values()})
        return users

    async def _load_id_by_uuid(self, uuids: list[UUID]) -> dict[UUID, int]:
        users = await self.repository.get_many_by_uuid(uuids)
        if users:
            await self.user_by_id.set_many({user.id: user for user in users.values()})
            await self.uuid_by_id.set_many({user.id: user.uuid for user in users.values()})
        return {uuid: user.id for uuid, user in users.items()}

    async def get(self, user_id: int) -> User:
        """Return a user by id.

        Raises:
            NotFoundError: No such user.
        """
        users = await self.user_by_id.get_many_or_load((user_id,), self._load_by_id)
        if user_id not in users:
            raise NotFoundError(f"No user with user_id {user_id}", parameter="user_id")
        return users[user_id]

    async def get_by_uuid(self, user_uuid: UUID) -> User:
        """Return a user by UUID (UUID to id through its own cache, then the user by id).

        Raises:
            NotFoundError: No such user.
        """
        ids = await self.id_by_uuid.get_many_or_load((user_uuid,), self._load_id_by_uuid)
        user_id = ids.get(user_uuid)
        if user_id is not None:
            users = await self.user_by_id.get_many_or_load((user_id,), self._load_by_id)
            if user_id in users:
                return users[user_id]
        raise NotFoundError(f"No user with user_uuid {user_uuid}", parameter="user_uuid")

    async def get_many(self, user_ids: Sequence[int]) -> dict[int, User]:
        """Return the users that exist among `user_ids`: one cache round trip, one query for the misses."""
        return await self.user_by_id.get_many_or_load(user_ids, self._load_by_id)

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:
        """Return one page of users, from the database (pages are not cached)."""
        return await self.repository.list_page(limit=limit, offset=offset)
