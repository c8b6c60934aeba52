"""`UserRepository`: the users' queries over the shared database layer (SQLite or PostgreSQL alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from app.db import UniqueViolationError
from app.users.models import User

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from app.db import Database, Row, Transaction
    from app.db.outbox import OutboxRow

    Invalidations = Callable[[User], Sequence[OutboxRow]]
    """The cache invalidations a write of this user records in its transaction (`app.db.outbox`)."""

__all__ = (
    "SAMPLE_USERS",
    "UPDATABLE_COLUMNS",
    "DuplicateEmailError",
    "UserRepository",
    "seed_sample_users",
    "users_table_answers",
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

_COLUMNS = "id, uuid, first_name, last_name, email, version, created_at, updated_at"
_INSERT = (
    "INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)"
)


class DuplicateEmailError(Exception):
    """Another user already has this email (compared case-insensitively)."""


async def seed_sample_users(tx: Transaction) -> None:
    """Insert `SAMPLE_USERS` into an empty `users` table."""
    if not await tx.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
        now = datetime.now(UTC)
        await tx.executemany(_INSERT, [(uuid, first, last, email, now) for uuid, first, last, email in SAMPLE_USERS])


async def users_table_answers(db: Database) -> None:
    """Raise unless the `users` table can be read (readiness)."""
    await db.fetchval("SELECT 1 FROM users LIMIT 1")


class UserRepository:
    """Users in the database: the source of truth behind the caches.

    Every method raises `DatabaseUnavailableError` when the database does not answer in time.
    """

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        """Query `db`."""
        self.db = db

    def _user(self, row: Row) -> User:
        return self._users((row,))[0]

    def _users(self, rows: Iterable[Row]) -> list[User]:
        uuid, timestamp = self.db.dialect.uuid, self.db.dialect.timestamp  # once per query, not per row
        return [
            User(
                id=row[0],
                uuid=uuid(row[1]),
                first_name=row[2],
                last_name=row[3],
                email=row[4],
                version=row[5],
                created_at=timestamp(row[6]),
                updated_at=timestamp(row[7]),
            )
            for row in rows
        ]

    def _optional(self, row: Row | None) -> User | None:
        return None if row is None else self._user(row)

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:
        """Return the users that exist among `ids`, in one query (per 900 ids on SQLite)."""
        query = f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1)"  # noqa: S608 - constant columns
        rows = await self.db.fetch_any(query, list(dict.fromkeys(ids)), sql_type="bigint")
        return {user.id: user for user in self._users(rows)}

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:
        """Return the users that exist among `uuids`, in one query (per 900 UUIDs on SQLite)."""
        query = f"SELECT {_COLUMNS} FROM users WHERE uuid = ANY($1)"  # noqa: S608 - constant columns
        rows = await self.db.fetch_any(query, list(dict.fromkeys(uuids)), sql_type="uuid")
        return {user.uuid: user for user in self._users(rows)}

    async def get_by_id(self, user_id: int) -> User | None:
        """Return one user by id."""
        return (await self.get_many_by_id([user_id])).get(user_id)

    async def get_by_uuid(self, user_uuid: UUID) -> User | None:
        """Return one user by UUID."""
        return (await self.get_many_by_uuid([user_uuid])).get(user_uuid)

    async def page_after(self, after: int | None, limit: int) -> list[User]:
        """Return up to `limit` users with ids above `after` (from the first when `None`), ordered by id.

        A range scan of the primary key (PostgreSQL's `users_pkey`, SQLite's rowid): as fast at the end of the
        table as at the start.
        """
        if after is None:
            rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT $1", limit)  # noqa: S608
        else:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2",  # noqa: S608 - constant columns
                after,
                limit,
            )
        return self._users(rows)

    async def newest(self, before: int | None, limit: int) -> list[User]:
        """Return up to `limit` users with ids below `before` (from the newest when `None`), newest first."""
        if before is None:
            rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY id DESC LIMIT $1", limit)  # noqa: S608
        else:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM users WHERE id < $1 ORDER BY id DESC LIMIT $2",  # noqa: S608 - constant columns
                before,
                limit,
            )
        return [self._user(row) for row in rows]

    async def page_at(self, offset: int, limit: int) -> list[User]:
        """Return up to `limit` users ordered by id, skipping `offset` (the database walks the skipped ones)."""
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset)  # noqa: S608
        return self._users(rows)

    async def count(self) -> int:
        """Return how many users there are (a scan of the table)."""
        return await self.db.fetchval("SELECT count(*) FROM users")

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:
        """Return one page of users ordered by id, and the total count."""
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS}, count(*) OVER () FROM users ORDER BY id LIMIT $1 OFFSET $2",  # noqa: S608
            limit,
            offset,
        )
        if rows or offset == 0:
            return self._users(rows), rows[0][8] if rows else 0
        return [], await self.db.fetchval("SELECT count(*) FROM users")

    def _outbox(self, invalidations: Invalidations | None) -> Callable[[Row], Sequence[OutboxRow]] | None:
        return None if invalidations is None else lambda row: invalidations(self._user(row))

    async def create(
        self, *, first_name: str, last_name: str, email: str, invalidations: Invalidations | None = None
    ) -> User:
        """Insert a user with a new id and a random UUID, at version 1.

        `invalidations` (in every write) names the outbox rows recorded in the write's transaction.

        Raises:
            DuplicateEmailError: The email is taken.
        """
        try:
            row = await self.db.write(
                f"{_INSERT} RETURNING {_COLUMNS}",
                uuid4(),
                first_name,
                last_name,
                email,
                datetime.now(UTC),
                outbox=self._outbox(invalidations),
            )
        except UniqueViolationError as exc:
            raise DuplicateEmailError(email) from exc
        assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
        return self._user(row)

    async def update(
        self, user_id: int, changes: Mapping[str, str], *, invalidations: Invalidations | None = None
    ) -> User | None:
        """Apply `changes` (column to value), increment the version; `None` if there is no such user.

        Raises:
            ValueError: A column is not in `UPDATABLE_COLUMNS`.
            DuplicateEmailError: The new email is taken.
        """
        if not changes.keys() <= UPDATABLE_COLUMNS:
            raise ValueError(f"not updatable: {sorted(changes.keys() - UPDATABLE_COLUMNS)}")
        assignments = "".join(f"{column} = ${n}, " for n, column in enumerate(changes, start=3))
        query = (
            f"UPDATE users SET {assignments}version = version + 1, updated_at = $2 WHERE id = $1 RETURNING {_COLUMNS}"  # noqa: S608 - allow-listed columns
        )
        try:
            row = await self.db.write(
                query, user_id, datetime.now(UTC), *changes.values(), outbox=self._outbox(invalidations)
            )
            return self._optional(row)
        except UniqueViolationError as exc:
            raise DuplicateEmailError(changes.get("email", "")) from exc

    async def delete(self, user_id: int, *, invalidations: Invalidations | None = None) -> User | None:
        """Delete a user and return the deleted row, or `None` if there was none."""
        query = f"DELETE FROM users WHERE id = $1 RETURNING {_COLUMNS}"  # noqa: S608 - constant columns
        return self._optional(await self.db.write(query, user_id, outbox=self._outbox(invalidations)))
