"""`UserService`: the only place that combines the user caches and the repository."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from app.db.outbox import OutboxRow
from app.errors import ConflictError, NotFoundError
from app.users.caches import MAPPING_VERSION, TOMBSTONE_VERSION
from app.users.models import UserBatch
from app.users.repository import DuplicateEmailError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from app.cache import Cache
    from app.users.models import User, UserCreate, UserUpdate
    from app.users.repository import UserRepository

__all__ = ("UserService",)


class UserService:
    """Cache-aside reads and write-through writes of users.

    Reads try the caches first and load misses from the database in one query per batch; unknown ids and
    UUIDs are cached as absent for a short while. Writes commit to the database first, then put the new
    row in every cache that can show the user (versioned, so a slow reader holding the old row cannot put it
    back) or, on delete, leave tombstones.
    """

    __slots__ = ("id_by_uuid", "repository", "user_by_id")

    def __init__(
        self,
        *,
        repository: UserRepository,
        user_by_id: Cache[int, User],
        id_by_uuid: Cache[UUID, int],
    ) -> None:
        """Combine a repository with the user caches."""
        self.repository = repository
        self.user_by_id = user_by_id
        self.id_by_uuid = id_by_uuid

    # -- loaders: what a cache miss costs -----------------------------------------------------------

    async def _load_id_by_uuid(self, uuids: list[UUID]) -> dict[UUID, int]:
        users = await self.repository.get_many_by_uuid(uuids)
        if users:
            await self.user_by_id.set_many({user.id: user for user in users.values()})
        return {uuid: user.id for uuid, user in users.items()}

    async def _load_id_of_uuid(self, user_uuid: UUID) -> int | None:
        return (await self._load_id_by_uuid([user_uuid])).get(user_uuid)

    # -- reads --------------------------------------------------------------------------------------

    async def get(self, user_id: int) -> User:
        """Return a user by id.

        Raises:
            NotFoundError: No such user.
        """
        user = await self.user_by_id.get_or_load(user_id, self.repository.get_by_id)
        if user is None:
            raise NotFoundError(f"No user with user_id {user_id}", parameter="user_id")
        return user

    async def get_by_uuid(self, user_uuid: UUID) -> User:
        """Return a user by UUID (UUID to id through its own cache, then the user by id).

        Raises:
            NotFoundError: No such user.
        """
        user_id = await self.id_by_uuid.get_or_load(user_uuid, self._load_id_of_uuid)
        user = None if user_id is None else await self.user_by_id.get_or_load(user_id, self.repository.get_by_id)
        if user is None:
            raise NotFoundError(f"No user with user_uuid {user_uuid}", parameter="user_uuid")
        return user

    async def lookup(self, ids: Sequence[int] = (), uuids: Sequence[UUID] = ()) -> UserBatch:
        """Return the users among `ids` and `uuids`: one cache round trip per kind, one query for the misses."""
        ids_of_uuids = await self.id_by_uuid.get_many_or_load(uuids, self._load_id_by_uuid) if uuids else {}
        wanted = [*ids, *ids_of_uuids.values()]
        users = await self.user_by_id.get_many_or_load(wanted, self.repository.get_many_by_id) if wanted else {}
        found: dict[int, User] = {}
        for user_id in wanted:
            if user_id in users:
                found.setdefault(user_id, users[user_id])
        return UserBatch(
            users=list(found.values()),
            missing_ids=list(dict.fromkeys(user_id for user_id in ids if user_id not in users)),
            missing_uuids=[uuid for uuid in dict.fromkeys(uuids) if ids_of_uuids.get(uuid) not in users],
        )

    async def list_page(
        self, *, limit: int, after: int | None = None, offset: int | None = None, total: bool = False
    ) -> tuple[list[User], bool, int | None]:
        """Return one page of users ordered by id, whether more follow, and the count when `total` is asked for.

        A page starts after the id `after` (a primary-key range scan) or, with `offset`, after skipping that many
        users (the database walks them). It reads one user more than `limit` to know whether another page
        follows, so no request counts the table unless `total` asks it to. Pages come from the database: they
        are not cached (README, "Listing users").
        """
        if offset is not None and total:
            users, count = await self.repository.list_page(limit=limit + 1, offset=offset)
        else:
            users = await (
                self.repository.page_at(offset, limit + 1)
                if offset is not None
                else self.repository.page_after(after, limit + 1)
            )
            count = await self.repository.count() if total else None
        return users[:limit], len(users) > limit, count

    # -- writes -------------------------------------------------------------------------------------
    # Each write records, in its own transaction, an outbox row for every cache key that could show the old
    # state (`app.db.outbox`); every replica applies them (`app.cache.fence`), so the invalidation is durable
    # before the write is acknowledged. The write-through below only makes it visible sooner.

    def _created(self, user: User) -> list[OutboxRow]:
        return [
            OutboxRow(self.user_by_id.namespace, self.user_by_id.key_text(user.id), user.version, "create"),
            OutboxRow(self.id_by_uuid.namespace, self.id_by_uuid.key_text(user.uuid), MAPPING_VERSION, "create"),
        ]

    def _updated(self, user: User) -> list[OutboxRow]:
        return [OutboxRow(self.user_by_id.namespace, self.user_by_id.key_text(user.id), user.version, "update")]

    def _deleted(self, user: User) -> list[OutboxRow]:
        return [
            OutboxRow(self.user_by_id.namespace, self.user_by_id.key_text(user.id), user.version + 1, "delete"),
            OutboxRow(self.id_by_uuid.namespace, self.id_by_uuid.key_text(user.uuid), TOMBSTONE_VERSION, "delete"),
        ]

    async def create(self, data: UserCreate) -> User:
        """Create a user and cache it under its id and UUID.

        Raises:
            ConflictError: The email is taken.
        """
        try:
            user = await self.repository.create(
                first_name=data.first_name, last_name=data.last_name, email=data.email, invalidations=self._created
            )
        except DuplicateEmailError:
            raise ConflictError(
                f"A user with email {data.email!r} already exists", parameter="email", source="body"
            ) from None
        await asyncio.gather(
            self.user_by_id.set(user.id, user),
            self.id_by_uuid.set(user.uuid, user.id),
        )
        return user

    async def update(self, user_id: int, data: UserUpdate) -> User:
        """Apply a partial update and cache the new version.

        Raises:
            NotFoundError: No such user.
            ConflictError: The new email is taken.
        """
        changes = data.changes()
        if not changes:
            return await self.get(user_id)
        try:
            user = await self.repository.update(user_id, changes, invalidations=self._updated)
        except DuplicateEmailError:
            raise ConflictError(
                f"A user with email {changes['email']!r} already exists", parameter="email", source="body"
            ) from None
        if user is None:
            raise NotFoundError(f"No user with user_id {user_id}", parameter="user_id")
        await self.user_by_id.set(user.id, user)
        return user

    async def delete(self, user_id: int) -> None:
        """Delete a user and leave tombstones in its caches.

        Raises:
            NotFoundError: No such user.
        """
        user = await self.repository.delete(user_id, invalidations=self._deleted)
        if user is None:
            raise NotFoundError(f"No user with user_id {user_id}", parameter="user_id")
        await asyncio.gather(
            self.user_by_id.set_absent(user.id, version=user.version + 1, ttl=self.user_by_id.policy.ttl),
            self.id_by_uuid.set_absent(user.uuid, version=TOMBSTONE_VERSION, ttl=self.id_by_uuid.policy.ttl),
        )
