"""`NearCache` on its own: admission and eviction, the byte bound, GC-free entries, TTL, the epoch guard, invalidation,
the trust deadline and the enabled flag."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from uuid import UUID

import msgspec
import pytest
from redis.asyncio import Redis

from app.cache import CacheFence, CacheManager, CachePolicy, CacheSpec, InvalidationBus, MemoryBackend, NearCache
from app.cache.near import FrequencySketch, footprint
from app.users.models import User
from bench.fixtures import synthetic_users


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def enabled_near(clock: Clock, *, max_entries: int = 100, ttl: float = 5.0, hot_limit: int = 1024) -> NearCache:
    near = NearCache(max_entries=max_entries, ttl=ttl, clock=clock, hot_limit=hot_limit)
    near.enabled = True
    return near


def fill(near: NearCache, *keys: str) -> None:
    for key in keys:
        near.put(key, f"value-{key}", near.epoch)


def test_a_new_near_cache_is_off_and_stores_nothing(clock: Clock) -> None:
    near = NearCache(clock=clock)
    assert not near.enabled
    near.put("a", "value-a", near.epoch)
    assert near.get("a") is None
    assert len(near) == 0


def test_put_and_get(clock: Clock) -> None:
    near = enabled_near(clock)
    fill(near, "a", "b")
    assert near.get("a") == "value-a"
    assert near.get("b") == "value-b"
    assert near.get("c") is None
    assert len(near) == 2


def test_when_full_a_key_asked_for_once_does_not_push_out_the_others(clock: Clock) -> None:
    near = enabled_near(clock, max_entries=3)
    fill(near, "a", "b", "c")
    fill(near, "d", "e")  # one-hit keys
    assert len(near) == 3
    assert [near.get(key) for key in "abcde"] == ["value-a", "value-b", "value-c", None, None]
    assert near.rejected == 2


def test_a_key_that_comes_back_takes_the_place_of_the_oldest_entry_not_read_since(clock: Clock) -> None:
    near = enabled_near(clock, max_entries=3)
    fill(near, "a", "b", "c")
    assert near.get("a") == "value-a"  # read: "a" gets a second chance, "b" is the oldest unread entry
    fill(near, "d", "d")  # asked for twice, more often than "b"
    assert len(near) == 3
    assert near.get("b") is None
    assert [near.get(key) for key in "acd"] == ["value-a", "value-c", "value-d"]


def test_a_victim_asked_for_as_often_keeps_its_place(clock: Clock) -> None:
    near = enabled_near(clock, max_entries=2)
    fill(near, "a", "a", "a", "b")
    fill(near, "c", "c")  # the victim "a" was asked for three times, "c" twice (no read here: a read of "a"
    assert near.rejected == 2  # would give it a second chance whatever its count)
    fill(near, "c", "c")  # now four times
    assert near.get("c") == "value-c"
    assert near.get("a") is None


def test_an_expired_entry_makes_room_for_any_newcomer(clock: Clock) -> None:
    near = enabled_near(clock, max_entries=2, ttl=5.0)
    fill(near, "a", "a", "a", "b", "b", "b")
    clock.now += 5.0
    fill(near, "c")  # asked for once, but the victims are dead
    assert near.get("c") == "value-c"


def test_the_byte_bound_holds_and_refuses_what_can_never_fit(clock: Clock) -> None:
    item = "x" * 1000
    one = footprint("k00", item)
    near = NearCache(max_entries=100, max_bytes=3 * one + one // 2, clock=clock)
    near.enabled = True
    for n in range(10):
        for _ in range(2 + n):  # every newcomer is asked for more often than the ones before
            near.put(f"k{n:02}", item, near.epoch)
            assert near.size_bytes <= near.max_bytes
    assert len(near) == 3
    assert near.size_bytes == 3 * one
    assert [near.get(f"k{n:02}") is not None for n in range(7, 10)] == [True, True, True]
    near.put("huge", "x" * near.max_bytes, near.epoch)
    assert near.get("huge") is None
    near.invalidate(["k07"])
    assert near.size_bytes == 2 * one
    near.clear()
    assert near.size_bytes == 0


def shared(user: User) -> list[object]:
    """The fields of `user` a near-cache entry shares with it (all but the UUID, which it packs)."""
    return [field for field in msgspec.structs.astuple(user) if field is not user.uuid]


def test_the_footprint_is_close_to_the_memory_entries_take(clock: Clock) -> None:
    users = synthetic_users(10_000)  # decoded before: only what the near cache adds is traced
    # (10,000: with fewer, the interpreter's free lists of small objects skew what is traced per entry)
    keys = [f"cache:user:0123abcd:{user.id}" for user in users]
    near = enabled_near(clock, max_entries=20_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, user in zip(keys, users, strict=True):
            near.put(key, user, near.epoch)
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(near) == 10_000
    # The near cache allocates each entry, a copy of its user and the user's packed UUID (traced); the keys and
    # the other fields (names, email, timestamps) are shared with the users allocated before: add them.
    held = taken + sum(
        sys.getsizeof(key)
        + sum(sys.getsizeof(field) for field in msgspec.structs.astuple(user) if field is not user.uuid)
        for key, user in zip(keys, users, strict=True)
    )
    assert 0.9 < near.size_bytes / held < 1.1, (near.size_bytes / 10_000, held / 10_000)


def test_entries_add_no_object_for_the_garbage_collector_to_walk(clock: Clock) -> None:
    users = synthetic_users(1000)
    assert not any(gc.is_tracked(user) for user in users)  # `User` is a gc=False Struct
    uuids = [user.uuid for user in users]
    assert all(gc.is_tracked(uuid) for uuid in uuids)  # a value the collector tracks: its entry must not add one
    keys = [f"cache:user:{user.id}" for user in users] + [f"cache:uuid:{user.id}" for user in users]
    near = enabled_near(clock, max_entries=10_000)
    near.put("warm-up", users[0], near.epoch)
    gc.collect()
    gc.disable()  # no collection meanwhile: it would untrack some containers by itself
    try:
        before = len(gc.get_objects())
        for key, value in zip(keys, [*users, *uuids], strict=True):
            near.put(key, value, near.epoch)
        added = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert len(near) == 2001
    assert added < 10, added


def test_the_sketch_counts_and_halves_after_its_window() -> None:
    sketch = FrequencySketch(100)
    for _ in range(5):
        sketch.increment("hot")
    assert sketch.frequency("hot") >= 5
    assert sketch.frequency("never") <= 1  # a collision at most
    for n in range(sketch.window):
        sketch.increment(f"other-{n}")
    assert 2 <= sketch.frequency("hot") <= 4  # 5 halved (plus collisions with the window's keys)


def test_entries_live_for_ttl_seconds(clock: Clock) -> None:
    near = enabled_near(clock, ttl=5.0)
    fill(near, "a")
    clock.now += 2.0
    fill(near, "b")
    clock.now += 2.9  # "a" is 4.9 s old
    assert near.get("a") == "value-a"
    clock.now += 0.1  # "a" is 5 s old: expired, and dropped when read
    assert near.get("a") is None
    assert len(near) == 1
    assert near.get("b") == "value-b"
    clock.now += 2.0
    assert near.get("b") is None
    assert len(near) == 0


def test_a_rewrite_restarts_the_ttl(clock: Clock) -> None:
    near = enabled_near(clock, ttl=5.0)
    fill(near, "a")
    clock.now += 4.0
    near.put("a", "newer", near.epoch)
    clock.now += 4.0
    assert near.get("a") == "newer"


def test_invalidate_drops_the_keys_and_counts_those_present(clock: Clock) -> None:
    near = enabled_near(clock)
    fill(near, "a", "b", "c")
    assert near.invalidate(["a", "c", "missing"]) == 2
    assert near.get("a") is None
    assert near.get("c") is None
    assert near.get("b") == "value-b"
    assert near.invalidate([]) == 0


def test_a_value_read_before_an_invalidation_is_not_stored_after_it(clock: Clock) -> None:
    near = enabled_near(clock)
    epoch = near.epoch  # a reader notes the epoch, then fetches from the backend...
    near.invalidate(["some-other-key"])  # ...while any invalidation arrives
    near.put("a", "maybe stale", epoch)
    assert near.get("a") is None
    near.put("a", "fresh", near.epoch)  # a reader that started after it may store
    assert near.get("a") == "fresh"


def test_clear_drops_everything_and_moves_the_epoch(clock: Clock) -> None:
    near = enabled_near(clock)
    fill(near, "a", "b")
    epoch = near.epoch
    near.clear()
    assert len(near) == 0
    near.put("a", "maybe stale", epoch)
    assert near.get("a") is None


def test_turning_off_clears_and_refuses_puts(clock: Clock) -> None:
    near = enabled_near(clock)
    fill(near, "a")
    epoch = near.epoch
    near.enabled = False
    assert near.get("a") is None
    assert len(near) == 0
    near.put("a", "value-a", near.epoch)
    assert len(near) == 0
    # Back on (the bus resubscribed): it starts empty, and a read begun before the outage stores nothing.
    near.enabled = True
    assert len(near) == 0
    near.put("a", "from before the outage", epoch)
    assert near.get("a") is None
    near.put("a", "value-a", near.epoch)
    assert near.get("a") == "value-a"


def test_a_lapse_of_trust_empties_it_once_trust_is_back(clock: Clock) -> None:
    near = enabled_near(clock)
    near.trusted_until = clock.now + 1.0
    fill(near, "a")
    near.trusted_until = clock.now + 2.0  # renewed in time (a sync every δ/4): entries stay
    clock.now += 1.5
    assert near.get("a") == "value-a"
    clock.now += 1.0  # the deadline passed: nothing is answered...
    assert near.get("a") is None
    assert len(near) == 1
    near.trusted_until = clock.now + 1.0  # ...and once trust is back, what lived through the lapse is gone
    assert len(near) == 0
    assert near.get("a") is None


@pytest.mark.parametrize("fenced", [False, True])
def test_with_the_fence_entries_live_as_long_as_their_cache_s_ttl_without_it_the_near_ttl(fenced: bool) -> None:
    fence = CacheFence(bound=1.0, retention=600.0) if fenced else None
    bus = InvalidationBus(Redis(), "test:invalidations")
    manager = CacheManager(MemoryBackend(), bus=bus, near_ttl=5.0, policy=CachePolicy(ttl=300.0), fence=fence)
    cache = manager.cache(CacheSpec(namespace="item", key_type=int, value_type=str, near=True))
    near = cache._near  # what the manager built
    assert near is not None
    assert near.ttl == (300.0 if fenced else 5.0)


def test_a_cache_of_users_leaves_the_garbage_collector_nothing_to_walk(clock: Clock) -> None:
    # Decoded as the cache decodes them: each user brings a UUID, a Python object the collector tracks.
    encoded = [msgspec.msgpack.encode(user) for user in synthetic_users(1000)]
    decode = msgspec.msgpack.Decoder(User).decode
    near = enabled_near(clock, max_entries=10_000)
    gc.collect()
    before = len(gc.get_objects())
    for n, data in enumerate(encoded):
        near.put(f"cache:user:{n}", decode(data), near.epoch)
    near.put("uuid", UUID(int=7), near.epoch)
    gc.collect()
    assert len(near) == 1001
    added = len(gc.get_objects()) - before
    assert added < 10, added


def test_a_hit_returns_an_equal_value_with_real_uuids(clock: Clock) -> None:
    user = synthetic_users(1)[0]
    near = enabled_near(clock)
    near.put("user", user, near.epoch)
    near.put("uuid", user.uuid, near.epoch)
    near.put("no-uuid", ("a", 1), near.epoch)
    hit = near.get("user")
    assert isinstance(hit, User)
    assert hit == user
    assert hit is not user  # a fresh copy
    assert type(hit.uuid) is UUID
    assert hit.uuid == user.uuid
    assert near.get("uuid") == user.uuid
    assert type(near.get("uuid")) is UUID
    assert near.get("no-uuid") == ("a", 1)
    assert user.uuid == UUID(int=1)  # the caller's value is untouched


def test_hot_entries_keep_their_rebuilt_value_and_only_so_many(clock: Clock) -> None:
    users = synthetic_users(4)
    near = enabled_near(clock, hot_limit=2)
    for n, user in enumerate(users):
        near.put(f"user:{n}", user, near.epoch)
    first = near.get("user:0")
    assert first == users[0]
    assert near.get("user:0") is first  # kept rebuilt: no copy for the next hit
    assert near.get("user:1") is near.get("user:1")
    third = near.get("user:2")  # the two slots are taken: a copy per hit
    assert third == users[2]
    assert near.get("user:2") is not third
    # A slot is given back when its entry goes (invalidated, replaced, evicted or cleared), and the next hit keeps it.
    near.invalidate(["user:0"])
    assert near.get("user:0") is None
    kept = near.get("user:2")
    assert near.get("user:2") is kept
    near.put("user:1", users[3], near.epoch)  # replaced: the new item, not the old rebuilt one
    assert near.get("user:1") == users[3]
    near.clear()
    near.enabled = True
    for n, user in enumerate(users):
        near.put(f"user:{n}", user, near.epoch)
    assert near.get("user:3") is near.get("user:3")


def test_hits_leave_at_most_the_hot_entries_for_the_garbage_collector(clock: Clock) -> None:
    encoded = [msgspec.msgpack.encode(user) for user in synthetic_users(1000)]
    decode = msgspec.msgpack.Decoder(User).decode
    near = enabled_near(clock, max_entries=10_000, hot_limit=10)
    for n, data in enumerate(encoded):
        near.put(f"cache:user:{n}", decode(data), near.epoch)
    gc.collect()
    before = len(gc.get_objects())
    hits = [near.get(f"cache:user:{n}") for n in range(1000)]
    assert all(hit is not None for hit in hits)
    del hits
    gc.collect()
    added = len(gc.get_objects()) - before
    assert added <= 10 * 2 + 5, added  # each hot User and its UUID, and a few of the test's own
