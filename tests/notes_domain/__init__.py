"""A second domain that lives only in the tests: it proves a domain needs its own folder and nothing in `app/`.

Everything a domain has is here in miniature: a Struct, a table with migrations per dialect, a typed cache,
a repository over the shared database, a service, a controller and the one `Domain` declaration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, Parameter

from app.cache import Cache, CacheManager, CacheSpec
from app.db import Database, Migrations
from app.di import Injected
from app.domain import Domain
from app.errors import NotFoundError

if TYPE_CHECKING:
    from app.db import Row

__all__ = ("NOTES", "NOTE_BY_ID", "Note", "NoteCreate", "NoteService")


class Note(msgspec.Struct, frozen=True, kw_only=True):
    """A note, as stored and as cached."""

    id: int
    text: str
    created_at: datetime


class NoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /notes`."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


NoteId = Annotated[int, Parameter(ge=1, le=2**63 - 1, description="The note's id.")]

NOTE_BY_ID = CacheSpec(namespace="note", key_type=int, value_type=Note)


class NoteService:
    """Cache-aside reads of notes; a created note is cached at once."""

    __slots__ = ("cache", "db")

    def __init__(self, db: Database, cache: Cache[int, Note]) -> None:
        self.db = db
        self.cache = cache

    def _note(self, row: Row) -> Note:
        return Note(id=row[0], text=row[1], created_at=self.db.dialect.timestamp(row[2]))

    async def _load(self, note_id: int) -> Note | None:
        row = await self.db.fetchrow("SELECT id, text, created_at FROM notes WHERE id = $1", note_id)
        return None if row is None else self._note(row)

    async def get(self, note_id: int) -> Note:
        note = await self.cache.get_or_load(note_id, self._load)
        if note is None:
            raise NotFoundError(f"No note with note_id {note_id}", parameter="note_id")
        return note

    async def create(self, data: NoteCreate) -> Note:
        row = await self.db.write(
            "INSERT INTO notes (text, created_at) VALUES ($1, $2) RETURNING id, text, created_at",
            data.text,
            datetime.now(UTC),
        )
        assert row is not None
        note = self._note(row)
        await self.cache.set(note.id, note)
        return note


class NoteController(Controller):
    path = "/notes"
    tags = ["notes"]  # noqa: RUF012

    @get("/{note_id:int}", operation_id="getNote")
    async def get_note(self, note_id: NoteId, note_service: Injected[NoteService]) -> Note:
        return await note_service.get(note_id)

    @post("/", operation_id="createNote")
    async def create_note(self, data: JSONBody[NoteCreate], note_service: Injected[NoteService]) -> Response[Note]:
        note = await note_service.create(data)
        return Response(note, status_code=201, headers={"Location": f"/notes/{note.id}"})


def note_services(db: Database, manager: CacheManager) -> dict[str, object]:
    return {"note_service": NoteService(db, manager.cache(NOTE_BY_ID))}


async def notes_table_answers(db: Database) -> None:
    await db.fetchval("SELECT 1 FROM notes LIMIT 1")


NOTES = Domain(
    name="notes",
    controllers=[NoteController],
    caches=[NOTE_BY_ID],
    provides={"note_service": NoteService},
    services=note_services,
    migrations=Migrations("tests.notes_domain.migrations"),
    readiness={"notes": notes_table_answers},
    closed_bodies=[NoteCreate],
)
