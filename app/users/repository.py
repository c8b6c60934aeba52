"""The `UserRepository` interface; implementations live in `sqlite.py` and `postgres.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from app.users.models import User

__all__ = (
    "SAMPLE_USERS",
    "UPDATABLE_COLUMNS",
    "DatabaseUnavailableError",
    "DuplicateEmailError",
    "UnavailableRepository",
    "UserRepository",
)

UPDATABLE_COLUMNS = frozenset({"first_name", "last_name", "email"})
"""Columns `update` may change; the names are interpolated into SQL, so nothing else is accepted."""

SAMPLE_USERS: tuple[tuple[UUID, str, str, str], ...] = tuple(
    (UUID(f"550e8400-e29b-41d4-a716-4466554400{n:02d}"), first, last, f"{first.lower()}.{last.lower()}@example.com")
    for n, (first, last) in enumerate(
        [
            ("Ada", "Lovelace"),
            ("Alan", "Turing"),
            ("Grace", "Hopper"),
            ("Edsger", "Dijkstra"),
            ("Barbara", "Liskov"),
            ("Donald", "Knuth"),
            ("Margaret", "Hamilton"),
            ("Ken", "Thompson"),
            ("Frances", "Allen"),
            ("Dennis", "Ritchie"),
        ],
        start=1,
    )
)
"""The ten users a new database is seeded with: ids 1-10, UUIDs 550e8400-e29b-41d4-a716-4466554400NN."""


class DuplicateEmailError(Exception):
    """Another user already has this email (compared case-insensitively)."""


class DatabaseUnavailableError(Exception):
    """The database did not answer (down, restarting, hung, locked or timed out): worth retrying later.

    A write that raises this may or may not have committed.
    """

    def __init__(self, reason: str) -> None:
        """`reason` says what happened, without secrets (it is logged)."""
        super().__init__(reason)
        self.reason = reason


class UserRepository(ABC):
    """Users in a database: the source of truth behind the caches.

    Every method raises `DatabaseUnavailableError` when the database does not answer in time.
    """

    __slots__ = ()

    name: str = "database"

    @abstractmethod
    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:
        """Return the users that exist among `ids`, in one query."""

    @abstractmethod
    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:
        """Return the users that exist among `uuids`, in one query."""

    @abstractmethod
    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:
        """Return one page of users ordered by id, and the total count."""

    @abstractmethod
    async def create(self, *, first_name: str, last_name: str, email: str) -> User:
        """Insert a user with a new id and a random UUID, at version 1.

        Raises:
            DuplicateEmailError: The email is taken.
        """

    async def update(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        """Apply `changes` (column to value), increment the version; `None` if there is no such user.

        Raises:
            ValueError: A column is not in `UPDATABLE_COLUMNS`.
            DuplicateEmailError: The new email is taken.
        """
        if not changes.keys() <= UPDATABLE_COLUMNS:
            raise ValueError(f"not updatable: {sorted(changes.keys() - UPDATABLE_COLUMNS)}")
        return await self._update(user_id, changes)

    @abstractmethod
    async def _update(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        """`update` after the columns were checked: they are safe to interpolate into SQL."""

    @abstractmethod
    async def delete(self, user_id: int) -> User | None:
        """Delete a user and return the deleted row, or `None` if there was none."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the database answers."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""

    async def get_by_id(self, user_id: int) -> User | None:
        """Return one user by id."""
        return (await self.get_many_by_id([user_id])).get(user_id)

    async def get_by_uuid(self, user_uuid: UUID) -> User | None:
        """Return one user by UUID."""
        return (await self.get_many_by_uuid([user_uuid])).get(user_uuid)


class UnavailableRepository(UserRepository):
    """Stands in while the first connection is being made: every call raises `DatabaseUnavailableError`."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str = "not connected yet") -> None:
        """Report `name` as the backend and `reason` in every error."""
        self.name = name
        self.reason = reason

    def _raise(self) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(self.reason)

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:  # noqa: D102
        raise self._raise()

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:  # noqa: D102
        raise self._raise()

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:  # noqa: D102
        raise self._raise()

    async def create(self, *, first_name: str, last_name: str, email: str) -> User:  # noqa: D102
        raise self._raise()

    async def _update(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        raise self._raise()

    async def delete(self, user_id: int) -> User | None:  # noqa: D102
        raise self._raise()

    async def ping(self) -> None:  # noqa: D102
        raise self._raise()

    async def close(self) -> None:  # noqa: D102
        return
