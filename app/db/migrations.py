"""Per-domain SQL migrations, recorded in `schema_migrations` under (domain, file name), and seeds.

Every replica and worker migrates at start-up. All of it (the bookkeeping table, every domain's pending
scripts, every seed) runs in one write transaction, which SQLite's `BEGIN IMMEDIATE` and PostgreSQL's
advisory lock make one at a time: processes that start together take turns instead of racing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import TYPE_CHECKING, TypeAlias

from app.db.base import Transaction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.db.base import Database

__all__ = ("MIGRATION_LOCK", "Migrations", "Seed", "migrate")

MIGRATION_LOCK = 0x7573657273
"""PostgreSQL advisory lock held while migrating; unchanged since the first release, so old and new replicas
of a rolling deploy take turns too."""

Seed: TypeAlias = Callable[[Transaction], Awaitable[None]]
"""Fills a domain's empty tables inside the migration transaction; checks for itself that it has work to do."""


@dataclass(frozen=True, slots=True)
class Migrations:
    """A domain's migrations: `*.sql` files in one folder per dialect of a package, applied in name order.

    Example: `Migrations("app.users.migrations")` reads `app/users/migrations/sqlite/*.sql` on SQLite.
    """

    package: str
    """An importable package holding a `sqlite/` and a `postgresql/` folder."""

    def load(self, dialect: str) -> list[tuple[str, str]]:
        """Return `(file name, sql)` of every script for `dialect`, ordered by name."""
        folder = files(self.package) / dialect
        scripts = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
        return [(entry.name, entry.read_text(encoding="utf-8")) for entry in sorted(scripts, key=lambda e: e.name)]


async def migrate(
    db: Database,
    migrations: Sequence[tuple[str, Migrations]],
    seeds: Sequence[Seed] = (),
) -> None:
    """Apply every domain's pending migrations, then run the seeds, in one transaction.

    Args:
        db: The database.
        migrations: `(domain name, its migrations)`, in the order the domains are declared.
        seeds: Callables that fill empty tables (each checks for itself that it has something to do).
    """
    from app.db.outbox import OUTBOX_MIGRATIONS  # noqa: PLC0415 - app.db.outbox imports this module

    dialect = db.dialect
    migrations = [("outbox", OUTBOX_MIGRATIONS), *migrations]  # the database layer's own table comes first
    scripts = [(domain, name, sql) for domain, plan in migrations for name, sql in plan.load(dialect.name)]
    async with db.transaction() as tx:
        if dialect.name == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await _bookkeeping_table(tx, db, [(domain, name) for domain, name, _ in scripts])
        applied = {(row[0], row[1]) for row in await tx.fetch("SELECT domain, name FROM schema_migrations")}
        for domain, name, sql in scripts:
            if (domain, name) not in applied:
                await tx.execute_script(sql)
                await tx.execute("INSERT INTO schema_migrations VALUES ($1, $2, $3)", domain, name, datetime.now(UTC))
        for seed in seeds:
            await seed(tx)


async def _bookkeeping_table(tx: Transaction, db: Database, known: Sequence[tuple[str, str]]) -> None:
    """Create `schema_migrations (domain, name, applied_at)`, or upgrade one keyed by file name only.

    The first releases recorded file names alone (`0001_users.sql`). Each such row is kept, under the domain
    that has a migration of that name (under `''` if none or several have).
    """
    legacy = await _columns(tx, db) == ["name", "applied_at"]
    if legacy:
        await tx.execute("ALTER TABLE schema_migrations RENAME TO schema_migrations_by_name")
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (domain TEXT NOT NULL, name TEXT NOT NULL,"
        f" applied_at {db.dialect.timestamp_type} NOT NULL, PRIMARY KEY (domain, name))"
    )
    if not legacy:
        return
    owners: dict[str, set[str]] = {}
    for domain, name in known:
        owners.setdefault(name, set()).add(domain)
    for name, applied_at in await tx.fetch("SELECT name, applied_at FROM schema_migrations_by_name"):
        domains = owners.get(name, set())
        owner = next(iter(domains)) if len(domains) == 1 else ""
        await tx.execute("INSERT INTO schema_migrations VALUES ($1, $2, $3)", owner, name, applied_at)
    await tx.execute("DROP TABLE schema_migrations_by_name")


async def _columns(tx: Transaction, db: Database) -> list[str]:
    """The columns of `schema_migrations` in order; `[]` if there is no such table."""
    if db.dialect.name == "sqlite":
        return [row[1] for row in await tx.fetch("SELECT * FROM pragma_table_info('schema_migrations')")]
    rows = await tx.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'schema_migrations' ORDER BY ordinal_position"
    )
    return [row[0] for row in rows]
