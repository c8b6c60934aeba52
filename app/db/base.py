"""`Database`: what repositories and migrations use, whatever the dialect; `UnavailableDatabase` for start-up."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, TypeAlias

from typing_extensions import override

from app.db.errors import DatabaseUnavailableError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractAsyncContextManager

    from app.db.dialect import Dialect
    from app.db.outbox import Outbox

__all__ = ("Database", "Row", "Transaction", "UnavailableDatabase")

Row: TypeAlias = Any
"""One result row: indexable by position (a tuple on SQLite, an `asyncpg.Record` on PostgreSQL)."""


class Transaction(ABC):
    """Statements run together in one write transaction (migrations and seeds)."""

    __slots__ = ()

    @abstractmethod
    async def fetch(self, query: str, *args: Any) -> list[Row]:
        """Run `query` and return its rows."""

    @abstractmethod
    async def fetchval(self, query: str, *args: Any) -> Any:
        """Run `query` and return the first column of its first row (`None` if there is none)."""

    @abstractmethod
    async def execute(self, query: str, *args: Any) -> None:
        """Run one statement."""

    @abstractmethod
    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments."""

    @abstractmethod
    async def execute_script(self, sql: str) -> None:
        """Run a script of `;`-separated statements without arguments (a migration)."""


class Database(ABC):
    """One connection (SQLite) or pool (PostgreSQL) that every domain shares.

    Queries use `$1`-style placeholders on both dialects. Reads may be retried; a write is one statement in a
    transaction of its own (on SQLite under the one writer lock that serialises every domain's writes), never
    retried. Every method raises `DatabaseUnavailableError` when the database does not answer in time.
    """

    __slots__ = ()

    name: str = "database"
    """`sqlite` or `postgresql`, as readiness reports it."""

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """What differs in how this database stores values."""

    @abstractmethod
    async def fetch(self, query: str, *args: Any) -> list[Row]:
        """Read rows."""

    @abstractmethod
    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        """Read one row, or `None`."""

    @abstractmethod
    async def fetchval(self, query: str, *args: Any) -> Any:
        """Read the first column of the first row."""

    @abstractmethod
    async def fetch_any(self, query: str, values: Sequence[Any], *, sql_type: str) -> list[Row]:
        """Read the rows matching any of `values`: `query` compares a column with `= ANY($1)`, its only parameter.

        Args:
            query: E.g. `SELECT ... FROM users WHERE id = ANY($1)`.
            values: Any number of values (SQLite gets them in chunks below its parameter limit).
            sql_type: The PostgreSQL type of one value (`bigint`, `uuid`): `$1` is cast to an array of it.
        """

    @abstractmethod
    async def write(self, query: str, *args: Any, outbox: Outbox | None = None) -> Row | None:
        """Run one writing statement in its own transaction; return its first row (`RETURNING`), if any.

        With `outbox`, the cache invalidations it returns for that row (none when there is no row) are recorded
        in the same transaction (`app.db.outbox`): the write commits with them or not at all.

        Raises:
            UniqueViolationError: The statement would break a unique constraint.
        """

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction for several statements: committed on exit, rolled back on an error."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the database answers."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


class UnavailableDatabase(Database):
    """Stands in while the first connection is being made: every call raises `DatabaseUnavailableError`."""

    __slots__ = ("_dialect", "name", "reason")

    def __init__(self, dialect: Dialect, reason: str = "not connected yet") -> None:
        """Report `dialect` as the backend and `reason` in every error."""
        self._dialect = dialect
        self.name = dialect.name
        self.reason = reason

    @property
    @override
    def dialect(self) -> Dialect:
        return self._dialect

    def _raise(self) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(self.reason)

    @override
    async def fetch(self, query: str, *args: Any) -> list[Row]:
        raise self._raise()

    @override
    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        raise self._raise()

    @override
    async def fetchval(self, query: str, *args: Any) -> Any:
        raise self._raise()

    @override
    async def fetch_any(self, query: str, values: Sequence[Any], *, sql_type: str) -> list[Row]:
        raise self._raise()

    @override
    async def write(self, query: str, *args: Any, outbox: Outbox | None = None) -> Row | None:
        raise self._raise()

    @override
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        raise self._raise()

    @override
    async def ping(self) -> None:
        raise self._raise()

    @override
    async def close(self) -> None:
        return
