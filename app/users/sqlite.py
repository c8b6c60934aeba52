"""`UserRepository` on SQLite (aiosqlite): the embedded default."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import aiosqlite

from app.users.migrations import load_migrations
from app.users.models import User
from app.users.repository import SAMPLE_USERS, DatabaseUnavailableError, DuplicateEmailError, UserRepository

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Mapping, Sequence

__all__ = ("SQLiteUserRepository",)

_COLUMNS = "id, uuid, first_name, last_name, email, version, created_at, updated_at"
_INSERT = f"INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}"  # noqa: E501, S608
# SQLite's default limit on bound parameters is 999 on old builds.
_MAX_PARAMS = 900


def _row_to_user(row: Any) -> User:
    return User(
        id=row[0],
        uuid=UUID(row[1]),
        first_name=row[2],
        last_name=row[3],
        email=row[4],
        version=row[5],
        created_at=datetime.fromisoformat(row[6]),
        updated_at=datetime.fromisoformat(row[7]),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


@contextmanager
def _unavailable_on_fault() -> Generator[None]:
    """A locked or busy database, an I/O error, a full disk: `DatabaseUnavailableError` (503), not a 500."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise DatabaseUnavailableError(f"sqlite: {exc}") from None


class SQLiteUserRepository(UserRepository):
    """One aiosqlite connection in WAL mode; writes are serialised by a lock."""

    __slots__ = ("_conn", "_write_lock")

    name = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Wrap an open connection (see `open`)."""
        self._conn = conn
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, seed: bool = True, busy_timeout_ms: int = 5000) -> SQLiteUserRepository:
        """Open (creating if needed) the database file, apply migrations and seed an empty table.

        Args:
            path: A file path, or `:memory:`.
            seed: Insert the sample users if the table is empty.
            busy_timeout_ms: How long a statement waits for a lock another process holds; then 503.
        """
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            await conn.execute("PRAGMA foreign_keys=ON")
            repo = cls(conn)
            await repo._migrate()
            if seed:
                await repo._seed()
        except BaseException:
            await conn.close()
            raise
        return repo

    async def _migrate(self) -> None:
        # One write transaction around reading what is applied and applying the rest: worker processes that
        # start together on one file take turns instead of both creating the tables.
        async with self._transaction():
            await self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            async with self._conn.execute("SELECT name FROM schema_migrations") as cursor:
                applied = {row[0] for row in await cursor.fetchall()}
            for name, sql in load_migrations("sqlite"):
                if name in applied:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    await self._conn.execute(statement)
                await self._conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, _now()))

    async def _seed(self) -> None:
        async with self._transaction():
            async with self._conn.execute("SELECT EXISTS (SELECT 1 FROM users)") as cursor:
                row = await cursor.fetchone()
            if row is not None and not row[0]:
                now = _now()
                await self._conn.executemany(
                    "INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(str(uuid), first, last, email, now, now) for uuid, first, last, email in SAMPLE_USERS],
                )

    @asynccontextmanager
    async def _transaction(self) -> AsyncGenerator[None]:
        with _unavailable_on_fault():
            async with self._write_lock:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    with suppress(sqlite3.OperationalError):  # SQLite may have rolled back already (I/O error)
                        await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")

    async def _fetch_one(self, query: str, params: Sequence[Any]) -> User | None:
        async with self._conn.execute(query, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _row_to_user(row)

    async def create(self, *, first_name: str, last_name: str, email: str) -> User:  # noqa: D102
        now = _now()
        try:
            async with self._transaction():
                user = await self._fetch_one(_INSERT, (str(uuid4()), first_name, last_name, email, now, now))
        except sqlite3.IntegrityError as exc:
            raise DuplicateEmailError(email) from exc
        assert user is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
        return user

    async def _update(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        assignments = "".join(f"{column} = ?, " for column in changes)
        try:
            async with self._transaction():
                return await self._fetch_one(
                    f"UPDATE users SET {assignments}version = version + 1, updated_at = ?"  # noqa: S608 - allow-listed columns
                    f" WHERE id = ? RETURNING {_COLUMNS}",
                    (*changes.values(), _now(), user_id),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateEmailError(changes.get("email", "")) from exc

    async def delete(self, user_id: int) -> User | None:  # noqa: D102
        async with self._transaction():
            return await self._fetch_one(f"DELETE FROM users WHERE id = ? RETURNING {_COLUMNS}", (user_id,))  # noqa: S608

    async def _select_in(self, column: str, values: Sequence[Any]) -> list[User]:
        users: list[User] = []
        for start in range(0, len(values), _MAX_PARAMS):
            chunk = values[start : start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM users WHERE {column} IN ({marks})"  # noqa: S608 - only placeholders
            with _unavailable_on_fault():
                async with self._conn.execute(query, chunk) as cursor:
                    users.extend(_row_to_user(row) for row in await cursor.fetchall())
        return users

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:  # noqa: D102
        return {user.id: user for user in await self._select_in("id", list(dict.fromkeys(ids)))}

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:  # noqa: D102
        return {user.uuid: user for user in await self._select_in("uuid", [str(u) for u in dict.fromkeys(uuids)])}

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[User], int]:  # noqa: D102
        with _unavailable_on_fault():
            async with self._conn.execute(
                f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608 - constant columns
                (limit, offset),
            ) as cursor:
                users = [_row_to_user(row) for row in await cursor.fetchall()]
            async with self._conn.execute("SELECT count(*) FROM users") as cursor:
                row = await cursor.fetchone()
        return users, row[0] if row else 0

    async def ping(self) -> None:  # noqa: D102
        with _unavailable_on_fault():
            async with self._conn.execute("SELECT 1") as cursor:
                await cursor.fetchone()

    async def close(self) -> None:  # noqa: D102
        await self._conn.close()
