"""`UserRepository` on PostgreSQL (asyncpg pool): what deployments use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg

from app.users.migrations import load_migrations
from app.users.models import User
from app.users.repository import SAMPLE_USERS, DuplicateEmailError, UserRepository

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ("PostgresUserRepository",)

_COLUMNS = "id, uuid, first_name, last_name, email, version, created_at, updated_at"
_INSERT = f"INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {_COLUMNS}"  # noqa: E501, S608
_MIGRATION_LOCK = 0x7573657273  # any constant shared by every replica: "users"


def _row_to_user(row: Any) -> User:
    return User(
        id=row[0],
        uuid=UUID(int=row[1].int),  # asyncpg returns its own UUID subclass
        first_name=row[2],
        last_name=row[3],
        email=row[4],
        version=row[5],
        created_at=row[6],
        updated_at=row[7],
    )


class PostgresUserRepository(UserRepository):
    """A pool of asyncpg connections; every write is one statement, so it is its own transaction."""

    __slots__ = ("_pool",)

    name = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Wrap an open pool (see `open`)."""
        self._pool = pool

    @classmethod
    async def open(
        cls, dsn: str, *, seed: bool = True, min_size: int = 1, max_size: int = 10
    ) -> PostgresUserRepository:
        """Connect, apply migrations (one replica at a time) and seed an empty table.

        Args:
            dsn: A `postgresql://` URL.
            seed: Insert the sample users if the table is empty.
            min_size: Connections opened at once.
            max_size: Upper bound of the pool.
        """
        pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)
        try:
            repo = cls(pool)
            await repo._migrate(seed=seed)
        except BaseException:
            await pool.close()
            raise
        return repo

    async def _migrate(self, *, seed: bool) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            applied = {row[0] for row in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, sql in load_migrations("postgresql"):
                if name not in applied:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, now())", name)
            if seed and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
                now = datetime.now(UTC)
                await conn.executemany(
                    "INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $5)",
                    [(uuid, first, last, email, now) for uuid, first, last, email in SAMPLE_USERS],
                )

    async def _fetch_users(self, query: str, *args: Any) -> list[User]:
        rows: list[Any] = await self._pool.fetch(query, *args)
        return [_row_to_user(row) for row in rows]

    async def _fetch_user(self, query: str, *args: Any) -> User | None:
        row: Any = await self._pool.fetchrow(query, *args)
        return None if row is None else _row_to_user(row)

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:  # noqa: D102
        users = await self._fetch_users(f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", list(ids))  # noqa: S608
        return {user.id: user for user in users}

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:  # noqa: D102
        users = await self._fetch_users(f"SELECT {_COLUMNS} FROM users WHERE uuid = ANY($1::uuid[])", list(uuids))  # noqa: S608
        return {user.uuid: user for user in users}

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:  # noqa: D102
        users = await self._fetch_users(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset)  # noqa: S608
        total: int = await self._pool.fetchval("SELECT count(*) FROM users")
        return users, total

    async def create(self, *, first_name: str, last_name: str, email: str) -> User:  # noqa: D102
        try:
            user = await self._fetch_user(_INSERT, uuid4(), first_name, last_name, email, datetime.now(UTC))
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateEmailError(email) from exc
        assert user is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
        return user

    async def _update(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        assignments = "".join(f"{column} = ${n}, " for n, column in enumerate(changes, start=3))
        query = (
            f"UPDATE users SET {assignments}version = version + 1, updated_at = $2 WHERE id = $1 RETURNING {_COLUMNS}"  # noqa: S608 - allow-listed columns
        )
        try:
            return await self._fetch_user(query, user_id, datetime.now(UTC), *changes.values())
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateEmailError(changes.get("email", "")) from exc

    async def delete(self, user_id: int) -> User | None:  # noqa: D102
        return await self._fetch_user(f"DELETE FROM users WHERE id = $1 RETURNING {_COLUMNS}", user_id)  # noqa: S608

    async def ping(self) -> None:  # noqa: D102
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:  # noqa: D102
        await self._pool.close()
