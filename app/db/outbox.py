"""The cache outbox: invalidations recorded in the same transaction as the write they describe.

Every write that changes what a cache may show inserts one row per cache key into `cache_outbox` before it
commits, so an acknowledged write always has its invalidation durable in the database, whatever Redis does
at that moment. Every replica reads the rows it has not seen yet (`DatabaseOutbox.read_after`) and applies
them to its caches (`app.cache.fence`); rows older than the retention are pruned.

Rows must become visible in id order, or a reader that has seen id 11 would skip an id 10 committed later.
SQLite commits one writer at a time. On PostgreSQL an identity column alone does not guarantee it, so the
insert takes a transaction-level advisory lock first: ids are drawn and committed one transaction at a time
(only the outbox insert and the commit are serialised, not the rest of the write).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

from app.db.migrations import Migrations

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from app.db.base import Database, Row, Transaction

__all__ = (
    "OUTBOX_LOCK",
    "OUTBOX_MIGRATIONS",
    "DatabaseOutbox",
    "Outbox",
    "OutboxRecord",
    "OutboxRow",
    "record_outbox",
)

OUTBOX_LOCK = 0x6F7574626F78
"""PostgreSQL advisory lock held from the outbox insert to the commit, so outbox ids commit in order."""

OUTBOX_MIGRATIONS = Migrations("app.db.outbox_migrations")
"""The outbox table, recorded under the name `outbox` in `schema_migrations`."""

Kind: TypeAlias = Literal["create", "update", "delete"]


class OutboxRow(NamedTuple):
    """One invalidation a write records: the cache namespace, the key as the cache encodes it, the version."""

    namespace: str
    key: str
    version: int
    """The version the write produced (a delete: the tombstone's); older cached versions are stale."""
    kind: Kind


class OutboxRecord(NamedTuple):
    """An `OutboxRow` as read back, with its id (ids grow in commit order)."""

    id: int
    namespace: str
    key: str
    version: int
    kind: str


Outbox: TypeAlias = "Callable[[Row], Sequence[OutboxRow]]"
"""What `Database.write(..., outbox=...)` takes: the outbox rows of the row a write returned."""

_INSERT = "INSERT INTO cache_outbox (namespace, key, version, kind, created_at) VALUES ($1, $2, $3, $4, $5)"


async def record_outbox(tx: Transaction, rows: Sequence[OutboxRow], *, postgresql: bool) -> None:
    """Insert `rows` into the outbox inside the caller's write transaction (nothing if there are none)."""
    if not rows:
        return
    if postgresql:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
    now = datetime.now(UTC)
    await tx.executemany(_INSERT, [(row.namespace, row.key, row.version, row.kind, now) for row in rows])


class DatabaseOutbox:
    """Reads and prunes the outbox: the `OutboxReader` the cache fence polls (see `app.cache.fence`)."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        """Read `db`'s outbox."""
        self.db = db

    async def read_after(self, after_id: int, limit: int) -> list[OutboxRecord]:
        """Return up to `limit` rows with an id above `after_id`, in id order.

        Raises:
            DatabaseUnavailableError: The database did not answer.
        """
        rows = await self.db.fetch(
            "SELECT id, namespace, key, version, kind FROM cache_outbox WHERE id > $1 ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
        return [OutboxRecord(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    async def prune(self, older_than: float) -> None:
        """Delete rows recorded more than `older_than` seconds ago.

        Raises:
            DatabaseUnavailableError: The database did not answer.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        await self.db.write("DELETE FROM cache_outbox WHERE created_at < $1", cutoff)
