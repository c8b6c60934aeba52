"""`PostgresDatabase`'s session: no reset query per release, timestamps read as UTC whatever the server's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import msgspec

from app.db.postgres import PostgresDatabase


async def test_a_released_connection_is_not_reset(postgres_url: str) -> None:
    """Nothing here leaves session state, so releasing sends no reset query (a round trip per operation).

    The trace of that: a session setting made by one operation is still there for the next one on the same
    connection (asyncpg's default reset would send `RESET ALL`).
    """
    db = await PostgresDatabase.open(postgres_url, min_size=1, max_size=1)
    try:
        await db.fetchval("SELECT set_config('application_name', 'kept', false)")
        assert await db.fetchval("SHOW application_name") == "kept"
    finally:
        await db.close()


async def test_timestamps_are_utc_whatever_the_server_time_zone(postgres_url: str) -> None:
    name = urlsplit(postgres_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Kolkata'")
        db = await PostgresDatabase.open(postgres_url)
        try:
            at = datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=UTC)
            read = await db.fetchval("SELECT $1::timestamptz", at)
            assert read == at
            assert read.utcoffset() == timedelta(0)
            assert msgspec.json.encode(read) == b'"2025-06-30T23:59:59.123456Z"'
            assert await db.fetchval("SELECT '2025-01-01 05:30:00+05:30'::timestamptz") == datetime(
                2025, 1, 1, tzinfo=UTC
            )
        finally:
            await db.close()
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET TimeZone')
        await admin.close()


async def test_uuids_are_uuid_instances_that_encode_like_uuid(postgres_url: str) -> None:
    db = await PostgresDatabase.open(postgres_url)
    try:
        value = uuid4()
        read = await db.fetchval("SELECT $1::uuid", value)
        assert isinstance(read, UUID)
        assert read == value
        assert hash(read) == hash(value)
        assert {value: 1}[read] == 1
        assert msgspec.json.encode(read) == msgspec.json.encode(value)
        assert msgspec.msgpack.encode(read) == msgspec.msgpack.encode(value)
    finally:
        await db.close()
