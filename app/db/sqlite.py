"""`Database` on SQLite (aiosqlite): one connection in WAL mode and the one writer lock every domain shares."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import aiosqlite
from typing_extensions import override

from app.db.base import Database, Row, Transaction
from app.db.dialect import SQLITE, Dialect
from app.db.errors import DatabaseUnavailableError, UniqueViolationError
from app.db.outbox import record_outbox

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Sequence

    from app.db.outbox import Outbox

__all__ = ("SQLiteDatabase",)

# SQLite's default limit on bound parameters is 999 on old builds.
_MAX_PARAMS = 900
_PLACEHOLDER = re.compile(r"\$(\d+)")
_ANY = "= ANY($1)"


@lru_cache(maxsize=512)
def _numbered(query: str) -> str:
    """`$1` -> `?1`: SQLite's numbered placeholders take the same positional arguments as PostgreSQL's."""
    return _PLACEHOLDER.sub(r"?\1", query)


def _bind(value: Any) -> Any:
    """What SQLite stores for a UUID (text) or a datetime (ISO 8601 text, which `Dialect.timestamp` reads back)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _params(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_bind(value) for value in args)


@contextmanager
def _unavailable_on_fault() -> Generator[None]:
    """A locked or busy database, an I/O error, a full disk: `DatabaseUnavailableError` (503), not a 500."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise DatabaseUnavailableError(f"sqlite: {exc}") from None


class _SQLiteTransaction(Transaction):
    __slots__ = ("_conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    # One `execute_fetchall` per query: one trip to aiosqlite's thread, where a cursor's execute, fetch and close
    # were three (each a wake-up of the thread and of the event loop, and a hand-over of the GIL).

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        return list(await self._conn.execute_fetchall(_numbered(query), _params(args)))

    async def fetchval(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0][0] if rows else None

    async def execute(self, query: str, *args: Any) -> None:
        await self._conn.execute(_numbered(query), _params(args))

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_numbered(query), [_params(row) for row in rows])

    async def execute_script(self, sql: str) -> None:
        # One statement at a time, inside the caller's transaction (`executescript` would commit first).
        for statement in filter(str.strip, sql.split(";")):
            await self._conn.execute(statement)


class SQLiteDatabase(Database):
    """One aiosqlite connection in WAL mode; writes (of every domain) are serialised by one lock."""

    __slots__ = ("_conn", "_transaction", "_write_lock")

    name = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Wrap an open connection (see `open`)."""
        self._conn = conn
        self._write_lock = asyncio.Lock()
        self._transaction = _SQLiteTransaction(conn)

    @classmethod
    async def open(cls, path: str, *, busy_timeout_ms: int = 5000) -> SQLiteDatabase:
        """Open (creating if needed) the database file.

        Args:
            path: A file path, or `:memory:`.
            busy_timeout_ms: How long a statement waits for a lock another process holds; then 503.
        """
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    @property
    @override
    def dialect(self) -> Dialect:
        return SQLITE

    @override
    @asynccontextmanager
    async def transaction(self) -> AsyncGenerator[Transaction]:
        with _unavailable_on_fault():
            async with self._write_lock:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._transaction
                except BaseException:
                    with suppress(sqlite3.OperationalError):  # SQLite may have rolled back already (I/O error)
                        await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")

    @override
    async def fetch(self, query: str, *args: Any) -> list[Row]:
        with _unavailable_on_fault():
            return await self._transaction.fetch(query, *args)

    @override
    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        with _unavailable_on_fault():
            rows = await self._transaction.fetch(query, *args)
            return rows[0] if rows else None

    @override
    async def fetchval(self, query: str, *args: Any) -> Any:
        with _unavailable_on_fault():
            return await self._transaction.fetchval(query, *args)

    @override
    async def fetch_any(self, query: str, values: Sequence[Any], *, sql_type: str) -> list[Row]:
        head, any_, tail = query.partition(_ANY)
        if not any_:
            raise ValueError(f"expected {_ANY!r} in {query!r}")
        rows: list[Row] = []
        for start in range(0, len(values), _MAX_PARAMS):
            chunk = values[start : start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            rows.extend(await self.fetch(f"{head}IN ({marks}){tail}", *chunk))
        return rows

    @override
    async def write(self, query: str, *args: Any, outbox: Outbox | None = None) -> Row | None:
        try:
            async with self.transaction() as tx:
                rows = await tx.fetch(query, *args)
                row = rows[0] if rows else None
                if outbox is not None and row is not None:
                    await record_outbox(tx, outbox(row), postgresql=False)
                return row
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise UniqueViolationError(str(exc)) from exc

    @override
    async def ping(self) -> None:
        await self.fetchval("SELECT 1")

    @override
    async def close(self) -> None:
        await self._conn.close()
