"""The compact entry layout (`entry-5`) and key encoding: sizes, round trips, the compare-and-set that reads them."""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID, uuid4

import msgspec
import pytest

from app.cache import Cache, CacheBackend, CachePolicy, MemoryBackend, entry
from app.cache.entry import FENCED, HEADER_SIZE, EntryFormat, Status, entry_header, schema_fingerprint, stored_version
from app.users.caches import USER_BY_ID
from app.users.models import User
from bench.fixtures import synthetic_users

NOW = 1_700_000_000.0


def _user_cache(backend: CacheBackend, *, soft: bool = False) -> Cache[int, User]:
    policy = CachePolicy(ttl=60, stale_ttl=60 if soft else 0, jitter=0)
    return Cache(
        backend, namespace="user", key_type=int, value_type=USER_BY_ID.value_type, policy=policy,
        version_of=lambda user: user.version, clock=lambda: NOW,
    )  # fmt: skip


def test_the_header_is_eleven_bytes_with_the_version_at_bytes_2_to_9() -> None:
    version = 0x0102030405060708
    for present, marker in ((True, 0x93), (False, 0x92)):
        for fresh_until_ms in (0, FENCED):
            header = entry_header(version, fresh_until_ms, present=present)
            assert header == bytes((marker, 0xCF)) + version.to_bytes(8, "big") + bytes((fresh_until_ms,))
            assert len(header) == HEADER_SIZE == 11
            assert stored_version(header) == version
    soft = entry_header(7, int(NOW * 1000), present=True)
    assert len(soft) == HEADER_SIZE + 8
    assert soft[10] == 0xCF
    assert stored_version(soft) == 7


def test_an_entry_is_the_header_then_the_value_as_the_array_of_its_fields() -> None:
    user = synthetic_users(1)[0]
    entry_format = EntryFormat(type(user), CachePolicy(jitter=0))
    entry = entry_format.pack("k", user, user.version, 60)
    row = msgspec.msgpack.encode(msgspec.structs.astuple(user))
    assert entry.value == entry_header(user.version, 0, present=True) + row
    assert len(entry.value) == HEADER_SIZE + len(row)
    assert len(msgspec.msgpack.encode(user)) - len(row) == 65  # the field names a map would repeat
    scalar = EntryFormat(int, CachePolicy(jitter=0)).pack("k", 12345, 1, 60)
    assert scalar.value == entry_header(1, 0, present=True) + msgspec.msgpack.encode(12345)


def test_a_user_s_entry_with_a_soft_ttl_is_no_longer_than_the_baseline_s_value() -> None:
    # A row as PostgreSQL returns it: microsecond timestamps (msgpack's 10-byte form), a random UUID.
    at = datetime(2026, 11, 28, 14, 41, 36, 123456, tzinfo=UTC)
    user = User(
        id=95001, uuid=uuid4(), first_name="Bench", last_name="User 95001", email="bench.user95001@example.com",
        created_at=at, updated_at=at,
    )  # fmt: skip
    entry_format = EntryFormat(User, CachePolicy(ttl=60, stale_ttl=30, jitter=0), clock=lambda: NOW)
    packed = entry_format.pack("k", user, user.version, 60)
    assert len(packed.value) == HEADER_SIZE + 8 + len(msgspec.msgpack.encode(msgspec.structs.astuple(user)))
    # The baseline stores the map alone (175 bytes): with the header on top of the map (194), Redis took a
    # 224-byte block for the entry against the baseline's 192.
    assert len(packed.value) <= len(msgspec.msgpack.encode(user))


class _Point(msgspec.Struct, frozen=True):
    x: Annotated[int, msgspec.Meta(ge=0)]
    y: int = 0


class _Point3(_Point, frozen=True):
    z: int = 0


def test_a_positional_entry_is_checked_against_the_struct_s_constraints_and_leaves_out_a_subclass_s_fields() -> None:
    entry_format = EntryFormat(_Point, CachePolicy(jitter=0))
    for value in (_Point(1, 2), _Point3(1, 2, 3)):
        assert entry_format.unpack("k", entry_format.pack("k", value, 1, 60).value, NOW) == (Status.HIT, _Point(1, 2))
    negative = entry_header(1, 0, present=True) + msgspec.msgpack.encode((-1, 2))
    with pytest.raises(msgspec.ValidationError):
        entry_format.unpack("k", negative, NOW)
    as_map = entry_header(1, 0, present=True) + msgspec.msgpack.encode(_Point(1, 2))  # an `entry-4` value
    with pytest.raises(msgspec.ValidationError):
        entry_format.unpack("k", as_map, NOW)


@pytest.mark.parametrize("soft", [False, True])
def test_entries_round_trip(soft: bool) -> None:
    user = synthetic_users(1)[0]
    policy = CachePolicy(ttl=60, stale_ttl=60 if soft else 0, jitter=0, early_refresh=0)
    entry_format = EntryFormat(type(user), policy, clock=lambda: NOW)
    packed = entry_format.pack("k", user, user.version, 60)
    assert stored_version(packed.value) == user.version
    assert entry_format.unpack("k", packed.value, NOW) == (Status.HIT, user)
    assert entry_format.unpack("k", packed.value, NOW + 61) == ((Status.STALE, user) if soft else (Status.HIT, user))
    absent = entry_format.pack("k", None, 3, 60)
    assert entry_format.unpack("k", absent.value, NOW) == (Status.ABSENT, None)
    assert stored_version(absent.value) == 3
    marker = entry_format.marker("k", 4, present=True)
    assert entry_format.unpack("k", marker.value, NOW) == (Status.MISS, None)
    assert marker.value == entry_header(4, FENCED, present=False)
    tombstone = entry_format.marker("k", 5, present=False)
    assert entry_format.unpack("k", tombstone.value, NOW) == (Status.ABSENT, None)


@pytest.mark.parametrize("soft", [False, True])
async def test_the_compare_and_set_refuses_older_versions(store: CacheBackend, soft: bool) -> None:
    cache = _user_cache(store, soft=soft)
    user = synthetic_users(1)[0]
    newer = msgspec.structs.replace(user, version=3, first_name="Newer")
    await cache.set(1, newer)
    await cache.set(1, msgspec.structs.replace(user, version=2))
    assert await cache.get(1) == newer
    assert cache.stats.stale_writes == 1
    await cache.set(1, msgspec.structs.replace(newer, version=4, first_name="Newest"))
    assert (await cache.get(1)).first_name == "Newest"  # type: ignore[union-attr]


async def test_markers_refuse_older_versions_and_read_as_misses(store: CacheBackend) -> None:
    cache = _user_cache(store)
    user = synthetic_users(1)[0]
    await cache.set(1, user)  # version 1
    await cache.apply_invalidations([(cache.key_text(1), 2, "update")])
    raw = (await store.get_many([cache.key(1)]))[0]
    assert raw == entry_header(2, FENCED, present=False)
    assert await cache.get(1) is None
    await cache.set(1, user)  # a load that read version 1 before the write: refused
    assert (await store.get_many([cache.key(1)]))[0] == raw
    await cache.set(1, msgspec.structs.replace(user, version=2))  # the write's own version fills it
    assert (await cache.get(1)).version == 2  # type: ignore[union-attr]
    await cache.apply_invalidations([(cache.key_text(1), 3, "delete")])
    assert (await store.get_many([cache.key(1)]))[0] == entry_header(3, 0, present=False)
    assert await cache.get(1) is None
    assert await cache.set_many({1: msgspec.structs.replace(user, version=2)}) is None
    assert (await store.get_many([cache.key(1)]))[0] == entry_header(3, 0, present=False)


def test_the_fingerprint_is_four_url_safe_characters() -> None:
    fingerprint = schema_fingerprint(USER_BY_ID.value_type)
    assert len(fingerprint) == 4
    assert set(fingerprint) <= set(string.ascii_letters + string.digits + "-_")
    cache = _user_cache(MemoryBackend())
    assert cache.key(12345) == f"cache:user:{fingerprint}:12345"


def test_uuid_keys_are_22_characters_of_url_safe_base64() -> None:
    cache: Cache[UUID, int] = Cache(MemoryBackend(), namespace="ids", key_type=UUID, value_type=int)
    for key in [uuid4() for _ in range(200)] + [UUID(int=0), UUID(int=2**128 - 1)]:
        text = cache.key_text(key)
        assert len(text) == 22
        assert set(text) <= set(string.ascii_letters + string.digits + "-_")
        assert UUID(bytes=base64.urlsafe_b64decode(text + "==")) == key
        assert cache.key(key).endswith(f":{text}")


def test_the_layout_is_part_of_the_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    current = schema_fingerprint(USER_BY_ID.value_type)
    monkeypatch.setattr(entry, "ENTRY_FORMAT", b"entry-3")
    assert schema_fingerprint(USER_BY_ID.value_type) != current
