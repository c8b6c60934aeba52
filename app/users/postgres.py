"""`UserRepository` on PostgreSQL (asyncpg pool): what deployments use."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

import asyncpg

from app.users.migrations import load_migrations
from app.users.models import User
from app.users.repository import SAMPLE_USERS, DatabaseUnavailableError, DuplicateEmailError, UserRepository

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[Any]

__all__ = ("UNAVAILABLE_ERRORS", "PostgresUserRepository")

logger = logging.getLogger("app.database")

T = TypeVar("T")

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.InterfaceError,  # the connection is closed, or was left mid-operation
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now, query canceled
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
)
"""Errors that mean "the database did not answer", not "the request was wrong": they become 503."""

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

    __slots__ = ("_acquire_timeout", "_pool", "_timeout")

    name = "postgresql"

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 5.0, acquire_timeout: float = 2.0) -> None:
        """Wrap an open pool (see `open`)."""
        self._pool = pool
        self._timeout = timeout
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        seed: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        operation_timeout: float = 5.0,
        acquire_timeout: float = 2.0,
        connect_timeout: float = 10.0,
    ) -> PostgresUserRepository:
        """Connect, apply migrations (one replica at a time) and seed an empty table.

        Args:
            dsn: A `postgresql://` URL.
            seed: Insert the sample users if the table is empty.
            min_size: Connections opened at once.
            max_size: Upper bound of the pool.
            operation_timeout: Longest one operation may take (a hung server); the connection is then dropped.
            acquire_timeout: Longest an operation waits for a connection from the pool (or a new one).
            connect_timeout: Longest the first connection may take.
        """
        pool: asyncpg.Pool = await asyncio.wait_for(
            asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=operation_timeout, timeout=connect_timeout
            ),
            connect_timeout,
        )
        try:
            repo = cls(pool, timeout=operation_timeout, acquire_timeout=acquire_timeout)
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

    async def _run(self, operation: Callable[[Connection], Awaitable[T]], *, idempotent: bool) -> T:
        """Run `operation` on a pooled connection within the time bounds; a read is retried once.

        A connection that failed with the server (restart, hang, reset) is terminated, not returned to the pool.

        Raises:
            DatabaseUnavailableError: The database did not answer (after the retry, for a read).
        """
        try:
            return await self._attempt(operation)
        except UNAVAILABLE_ERRORS as exc:
            if not idempotent:
                raise DatabaseUnavailableError(_reason(exc)) from None
            logger.info("database: retrying a read on a fresh connection after %s", _reason(exc))
        try:
            return await self._attempt(operation)
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailableError(_reason(exc)) from None

    async def _attempt(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        try:
            conn: Connection = await self._pool.acquire(timeout=self._acquire_timeout)
        except TimeoutError:
            raise TimeoutError(f"no connection within {self._acquire_timeout:g}s") from None
        healthy = False
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    result = await operation(conn)
            except TimeoutError:
                raise TimeoutError(f"no answer within {self._timeout:g}s") from None
            healthy = True
            return result
        except asyncpg.PostgresError as exc:
            healthy = not isinstance(exc, UNAVAILABLE_ERRORS)  # e.g. a unique violation leaves it usable
            raise
        finally:
            if not healthy:
                conn.terminate()
            await self._release(conn)

    async def _release(self, conn: Connection) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._pool.release(conn)
        except (*UNAVAILABLE_ERRORS, asyncio.CancelledError):
            conn.terminate()
            raise

    async def _fetch_users(self, query: str, *args: Any) -> list[User]:
        rows: list[Any] = await self._run(lambda conn: conn.fetch(query, *args), idempotent=True)
        return [_row_to_user(row) for row in rows]

    async def _fetch_user(self, query: str, *args: Any, idempotent: bool = False) -> User | None:
        row: Any = await self._run(lambda conn: conn.fetchrow(query, *args), idempotent=idempotent)
        return None if row is None else _row_to_user(row)

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:  # noqa: D102
        users = await self._fetch_users(f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::bigint[])", list(ids))  # noqa: S608
        return {user.id: user for user in users}

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:  # noqa: D102
        users = await self._fetch_users(f"SELECT {_COLUMNS} FROM users WHERE uuid = ANY($1::uuid[])", list(uuids))  # noqa: S608
        return {user.uuid: user for user in users}

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:  # noqa: D102
        query = f"SELECT {_COLUMNS}, count(*) OVER () FROM users ORDER BY id LIMIT $1 OFFSET $2"  # noqa: S608

        async def page(conn: Connection) -> tuple[list[User], int]:
            rows: list[Any] = await conn.fetch(query, limit, offset)
            if rows or offset == 0:
                return [_row_to_user(row) for row in rows], rows[0][8] if rows else 0
            return [], await conn.fetchval("SELECT count(*) FROM users")

        return await self._run(page, idempotent=True)

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
        await self._run(lambda conn: conn.fetchval("SELECT 1"), idempotent=False)

    async def close(self) -> None:  # noqa: D102
        await self._pool.close()


def _reason(exc: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] Connect call failed ...`: what went wrong, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
