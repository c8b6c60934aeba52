"""Item 14: with CACHE_SIGNING_KEY set, whoever can write to Redis cannot choose what the service answers."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest
import redis
from litestar import Litestar

from app.cache import EntrySigner
from app.cache.entry import entry_header
from app.config import Settings
from app.server import create_app
from app.users.caches import UserCaches
from app.users.models import User
from tests.asgi import concurrent_client

KEY = "k-current-0123456789abcdef"
OLD_KEY = "k-previous-0123456789abcdef"
ATTACKER = EntrySigner([b"attacker-key-0123456789"])
ADA_UUID = UUID("550e8400-e29b-41d4-a716-446655440001")
GRACE_UUID = UUID("550e8400-e29b-41d4-a716-446655440002")


def stored(user: User) -> bytes:
    """A user's value as an entry holds it (layout `entry-5`: the array of its fields)."""
    return msgspec.msgpack.encode(msgspec.structs.astuple(user))


def signed_app(redis_url: str, sqlite_path: str, key: str | None) -> Litestar:
    return create_app(
        Settings(
            redis_url=redis_url, database_url=f"sqlite:///{sqlite_path}", cache_signing_key=key, cache_coalesce=False
        )
    )


def caches(app: Litestar) -> UserCaches:
    return app.state.user_caches


def forgeries(key: str, entry: bytes) -> list[bytes]:
    """An entry as an attacker can write it: without a tag, with a tag of their own key, with a truncated tag."""
    return [entry, ATTACKER.sign(key, entry), EntrySigner([b"x" * 16]).sign(key, entry)[:-1]]


@pytest.mark.parametrize("forgery", [0, 1, 2])
async def test_forged_entries_are_rejected(
    redis_url: str, redis_client: redis.Redis, sqlite_path: str, forgery: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = signed_app(redis_url, sqlite_path, KEY)
    async with concurrent_client(app) as client:
        user_caches = caches(app)
        ada = msgspec.convert((await client.get("/users/1")).json(), User)

        # A forged user.
        mallory = msgspec.structs.replace(ada, first_name="Mallory")
        key = user_caches.by_id.key(1)
        entry = entry_header(ada.version, 0, present=True) + stored(mallory)
        redis_client.set(key, forgeries(key, entry)[forgery])
        assert (await client.get("/users/1")).json()["first_name"] == "Ada"
        assert redis_client.get(key) != forgeries(key, entry)[forgery]  # deleted, then refilled genuinely

        # A version no write can beat: the compare-and-set refuses the PATCH's write, but no read serves it.
        key = user_caches.by_id.key(2)
        entry = entry_header(2**52, 0, present=True) + stored(msgspec.structs.replace(ada, id=2))
        redis_client.set(key, forgeries(key, entry)[forgery])
        assert (await client.patch("/users/2", json={"first_name": "Patched"})).status_code == 200
        assert (await client.get("/users/2")).json()["first_name"] == "Patched"
        assert (await client.get("/users/2")).json()["first_name"] == "Patched"

        # A forged absence with a high version.
        key = user_caches.by_id.key(3)
        redis_client.set(key, forgeries(key, entry_header(2**52, 0, present=False))[forgery])
        assert (await client.get("/users/3")).status_code == 200

        # A forged UUID -> id mapping.
        key = user_caches.id_by_uuid.key(ADA_UUID)
        entry = entry_header(1, 0, present=True) + msgspec.msgpack.encode(2)
        redis_client.set(key, forgeries(key, entry)[forgery])
        assert (await client.get(f"/users/uuid/{ADA_UUID}")).json()["id"] == 1

        stats = app.state.cache_manager.stats()
        assert stats["user"].decode_errors >= 3
        assert stats["user-id-by-uuid"].decode_errors == 1
    assert KEY not in caplog.text


async def test_a_genuine_entry_moved_to_another_key_is_rejected(
    redis_url: str, redis_client: redis.Redis, sqlite_path: str
) -> None:
    app = signed_app(redis_url, sqlite_path, KEY)
    async with concurrent_client(app) as client:
        assert (await client.get(f"/users/uuid/{GRACE_UUID}")).json()["id"] == 2
        id_by_uuid = caches(app).id_by_uuid
        genuine = redis_client.get(id_by_uuid.key(GRACE_UUID))
        assert genuine is not None
        redis_client.set(id_by_uuid.key(ADA_UUID), genuine)  # Grace's mapping, replayed under Ada's UUID
        assert (await client.get(f"/users/uuid/{ADA_UUID}")).json()["id"] == 1
        assert id_by_uuid.stats.decode_errors == 1


async def test_unsigned_caches_are_what_an_attacker_controls(
    redis_url: str, redis_client: redis.Redis, sqlite_path: str
) -> None:
    """Without a key, the forged user is served: the reason CACHE_SIGNING_KEY exists (and proof the forgery is apt)."""
    app = signed_app(redis_url, sqlite_path, None)
    async with concurrent_client(app) as client:
        ada = msgspec.convert((await client.get("/users/1")).json(), User)
        key = caches(app).by_id.key(1)
        mallory = msgspec.structs.replace(ada, first_name="Mallory")
        redis_client.set(key, entry_header(ada.version, 0, present=True) + stored(mallory))
        assert (await client.get("/users/1")).json()["first_name"] == "Mallory"


async def test_key_rotation(redis_url: str, redis_client: redis.Redis, sqlite_path: str) -> None:
    old = signed_app(redis_url, sqlite_path, OLD_KEY)
    async with concurrent_client(old) as client:
        assert (await client.get("/users/1")).status_code == 200
        key = caches(old).by_id.key(1)
        written_by_old = redis_client.get(key)
        assert isinstance(written_by_old, bytes)
    rotating = signed_app(redis_url, sqlite_path, f"{KEY},{OLD_KEY}")
    async with concurrent_client(rotating) as client:
        assert caches(rotating).by_id.key(1) == key  # the keys do not depend on the signing keys
        assert (await client.get("/users/1")).status_code == 200
        assert caches(rotating).by_id.stats.hits == 1  # the old key still verifies
        assert redis_client.get(key) == written_by_old
        assert (await client.patch("/users/1", json={"first_name": "Rotated"})).status_code == 200
    new_only = signed_app(redis_url, sqlite_path, KEY)
    async with concurrent_client(new_only) as client:
        assert (await client.get("/users/1")).json()["first_name"] == "Rotated"
        assert caches(new_only).by_id.stats.hits == 1  # written with the new key by the rotating app
        redis_client.set(key, written_by_old)
        assert (await client.get("/users/1")).json()["first_name"] == "Rotated"
        assert caches(new_only).by_id.stats.decode_errors == 1  # the retired key no longer verifies


def test_signed_and_unsigned_caches_use_different_keys() -> None:
    from app.cache import MemoryBackend
    from app.cache.typed import Cache

    plain = Cache(MemoryBackend(), namespace="n", key_type=int, value_type=User)
    signed = Cache(MemoryBackend(), namespace="n", key_type=int, value_type=User, signer=ATTACKER)
    assert plain.key(1) != signed.key(1)
    assert repr(ATTACKER) == "EntrySigner(keys=1)"


def test_signer_validates_its_keys() -> None:
    with pytest.raises(ValueError, match="16 to 64"):
        EntrySigner([b"short"])
    with pytest.raises(ValueError, match="at least one"):
        EntrySigner([])
