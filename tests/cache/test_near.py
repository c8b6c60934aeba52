"""`NearCache` on its own: size bound and eviction order, TTL, the epoch guard, invalidation and the enabled flag."""

from __future__ import annotations

import pytest

from app.cache import NearCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def enabled_near(clock: Clock, *, max_entries: int = 100, ttl: float = 5.0) -> NearCache:
    near = NearCache(max_entries=max_entries, ttl=ttl, clock=clock)
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


def test_beyond_max_entries_the_entry_written_longest_ago_goes_first(clock: Clock) -> None:
    near = enabled_near(clock, max_entries=3)
    fill(near, "a", "b", "c")
    assert near.get("a") == "value-a"  # a read does not make "a" younger
    fill(near, "d")
    assert len(near) == 3
    assert near.get("a") is None
    assert [near.get(key) for key in "bcd"] == ["value-b", "value-c", "value-d"]
    fill(near, "b")  # rewriting "b" makes it the youngest, so "c" is next out
    fill(near, "e")
    assert near.get("c") is None
    assert [near.get(key) for key in "bde"] == ["value-b", "value-d", "value-e"]
    assert len(near) == 3


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
