"""Domains are mounted from their declarations: a test-only domain works beside users with no edit in `app/`."""

from __future__ import annotations

import ast
import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import asyncpg
import pytest
from litestar import Litestar

from app.config import Settings
from app.domain import Domain
from app.domains import DOMAINS
from app.lifespan import open_migrated_database
from app.server import create_app
from app.users.domain import USERS
from app.users.repository import UserRepository
from tests.asgi import concurrent_client
from tests.notes_domain import NOTES

APP = Path(__file__).resolve().parents[1] / "app"


@pytest.fixture
def notes_app(settings: Settings) -> Litestar:
    return create_app(settings, domains=[USERS, NOTES])


async def test_a_test_only_domain_serves_its_routes_beside_users(notes_app: Litestar) -> None:
    async with concurrent_client(notes_app) as client:
        created = await client.post("/notes", json={"text": "hello"})
        assert created.status_code == 201, created.text
        note = created.json()
        assert note["text"] == "hello"
        assert created.headers["location"] == f"/notes/{note['id']}"
        assert (await client.get("/users/1")).json()["first_name"] == "Ada"
        missing = await client.get("/notes/999")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "No note with note_id 999"
        closed = await client.post("/notes", json={"text": "x", "colour": "red"})
        assert closed.status_code == 400
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text


async def test_the_test_domain_uses_its_typed_cache(notes_app: Litestar) -> None:
    async with concurrent_client(notes_app) as client:
        # Written by a raw insert, not cached by a create: the first GET loads it, the second is a hit.
        row = await notes_app.state.database.write(
            "INSERT INTO notes (text, created_at) VALUES ($1, $2) RETURNING id", "direct", datetime.now(UTC)
        )
        stats = notes_app.state.cache_manager.stats()["note"]
        before = (stats.hits + stats.near_hits, stats.loads)
        first = await client.get(f"/notes/{row[0]}")
        assert first.status_code == 200
        assert (stats.hits + stats.near_hits, stats.loads) == (before[0], before[1] + 1)
        second = await client.get(f"/notes/{row[0]}")
        assert second.json() == first.json()
        assert (stats.hits + stats.near_hits, stats.loads) == (before[0] + 1, before[1] + 1)


async def test_each_domain_records_its_migrations_under_its_name(notes_app: Litestar) -> None:
    async with concurrent_client(notes_app):
        rows = await notes_app.state.database.fetch("SELECT domain, name FROM schema_migrations ORDER BY domain")
    assert [tuple(row) for row in rows] == [
        ("notes", "0001_notes.sql"),
        ("outbox", "0001_cache_outbox.sql"),  # the database layer's own table (app.db.outbox)
        ("users", "0001_users.sql"),
    ]


async def test_the_openapi_document_closes_the_test_domain_bodies(notes_app: Litestar) -> None:
    schemas = notes_app.openapi_schema.components.schemas or {}
    assert schemas["NoteCreate"].additional_properties is False
    assert schemas["UserCreate"].additional_properties is False
    assert "/notes/{note_id}" in (notes_app.openapi_schema.paths or {})
    assert "/notes/{note_id}" not in (create_app(Settings()).openapi_schema.paths or {})


async def test_readiness_runs_every_domains_check(notes_app: Litestar) -> None:
    async with concurrent_client(notes_app) as client:
        async with notes_app.state.database.transaction() as tx:
            await tx.execute("DROP TABLE notes")
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["database"]["error"].startswith("notes: ")


async def test_one_sqlite_writer_serialises_every_domains_writes(sqlite_path: str) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{sqlite_path}"), domains=[USERS, NOTES])
    async with concurrent_client(app) as client:
        responses = await asyncio.gather(
            *(client.post("/notes", json={"text": f"n{n}"}) for n in range(20)),
            *(client.patch(f"/users/{1 + n % 10}", json={"last_name": f"L{n}"}) for n in range(20)),
        )
    assert [r.status_code for r in responses] == [201] * 20 + [200] * 20, [r.text for r in responses if r.is_error]


def test_domains_and_provided_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        create_app(Settings(), domains=[USERS, USERS])
    with pytest.raises(ValueError, match="no services factory"):
        Domain(name="orders", provides={"order_service": object})
    copy = Domain(name="users-again", provides={"user_service": object}, services=lambda db, manager: {})
    with pytest.raises(ValueError, match="user_service"):
        create_app(Settings(), domains=[USERS, copy])


# -- an existing deployment's schema_migrations, keyed by file name only -----------------------------------

LEGACY_SQLITE = (
    "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
    "INSERT INTO schema_migrations VALUES ('0001_users.sql', '2025-01-02T03:04:05+00:00')",
)
LEGACY_POSTGRES = (
    "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)",
    "INSERT INTO schema_migrations VALUES ('0001_users.sql', '2025-01-02T03:04:05+00:00')",
)
ONE_USER = (
    "INSERT INTO users (uuid, first_name, last_name, email, created_at, updated_at) VALUES"
    " ('00000000-0000-4000-8000-000000000001', 'Old', 'Row', 'old@example.com',"
    " '2025-01-02T03:04:05+00:00', '2025-01-02T03:04:05+00:00')"
)


async def _legacy_database(database_url: str) -> None:
    """What the first releases left: the users table (one row) and schema_migrations keyed by name."""
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    users_sql = (APP / "users" / "migrations" / dialect / "0001_users.sql").read_text()
    if dialect == "sqlite":
        async with aiosqlite.connect(database_url.removeprefix("sqlite:///")) as conn:
            await conn.executescript(users_sql)
            for statement in (*LEGACY_SQLITE, ONE_USER):
                await conn.execute(statement)
            await conn.commit()
        return
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(users_sql)
        for statement in (*LEGACY_POSTGRES, ONE_USER):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_an_existing_schema_migrations_keyed_by_file_name_is_upgraded(database_url: str) -> None:
    await _legacy_database(database_url)
    db = await open_migrated_database(Settings(database_url=database_url), [*DOMAINS, NOTES])
    try:
        rows = await db.fetch("SELECT domain, name, applied_at FROM schema_migrations ORDER BY domain")
        users, total = await UserRepository(db).list_page(limit=10, offset=0)
    finally:
        await db.close()
    assert [(row[0], row[1]) for row in rows] == [
        ("notes", "0001_notes.sql"),
        ("outbox", "0001_cache_outbox.sql"),
        ("users", "0001_users.sql"),
    ]
    assert db.dialect.timestamp(rows[2][2]) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)  # kept, not re-applied
    assert total == 1  # not re-created, not seeded over
    assert users[0].first_name == "Old"


# -- the layers: nothing imports back up ----------------------------------------------------------------------


def _app_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("app"))
    return names


@pytest.mark.parametrize(
    ("files", "forbidden"),
    [
        (["db/*.py", "di.py", "domain.py"], ("app.users", "app.domains", "app.server", "app.lifespan", "app.deps")),
        (["inputs.py", "patterns.py", "errors.py"], ("app.users", "app.domains", "app.server", "app.lifespan")),
        (["users/*.py"], ("app.domains", "app.server", "app.lifespan", "app.deps", "app.health", "app.openapi")),
        (["cache/*.py"], ("app.db", "app.users", "app.di", "app.domain", "app.domains")),
    ],
)
def test_no_import_runs_back_up(files: list[str], forbidden: tuple[str, ...]) -> None:
    paths = [path for pattern in files for path in APP.glob(pattern)]
    assert paths
    upward = {
        f"{path.relative_to(APP)} imports {name}"
        for path in paths
        for name in _app_imports(path)
        if name.startswith(forbidden)
    }
    assert not upward


def test_app_names_no_test_domain() -> None:
    assert not [path for path in APP.rglob("*.py") if "notes" in path.read_text(encoding="utf-8").lower()]
