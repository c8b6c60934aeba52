"""The database layer every domain shares.

One SQLite connection or asyncpg pool, transactions, the single SQLite writer, per-domain migrations and
seeds. Repositories take a `Database` and hold queries only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.db.base import Database, Row, Transaction, UnavailableDatabase
from app.db.dialect import POSTGRESQL, SQLITE, Dialect
from app.db.errors import DatabaseUnavailableError, UniqueViolationError
from app.db.migrations import Migrations, Seed, migrate

if TYPE_CHECKING:
    from app.config import Settings

__all__ = (
    "Database",
    "DatabaseUnavailableError",
    "Dialect",
    "Migrations",
    "Row",
    "Seed",
    "Transaction",
    "UnavailableDatabase",
    "UniqueViolationError",
    "dialect_of",
    "migrate",
    "open_database",
)


def dialect_of(settings: Settings) -> Dialect:
    """The dialect `DATABASE_URL` names (SQLite when it is unset)."""
    return SQLITE if settings.sqlite_path is not None else POSTGRESQL


async def open_database(settings: Settings, *, connect_timeout: float = 10.0) -> Database:
    """Connect to the database the settings describe (not migrated yet: see `migrate`)."""
    path = settings.sqlite_path
    if path is None:
        from app.db.postgres import PostgresDatabase  # noqa: PLC0415 - asyncpg only for PostgreSQL

        assert settings.database_url is not None  # noqa: S101 - sqlite_path is None only for other URLs
        return await PostgresDatabase.open(
            settings.database_url,
            operation_timeout=settings.database_timeout_ms / 1000,
            acquire_timeout=settings.database_acquire_timeout_ms / 1000,
            connect_timeout=connect_timeout,
        )
    from app.db.sqlite import SQLiteDatabase  # noqa: PLC0415 - aiosqlite only for SQLite

    return await SQLiteDatabase.open(path, busy_timeout_ms=settings.database_timeout_ms)
