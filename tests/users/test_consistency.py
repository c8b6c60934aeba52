"""The cache-aside race: a reader that loaded a row before a write must not put it back after the write."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
import redis

from app.config import Settings
from app.server import create_app
from app.users.caches import USER_BY_ID
from tests.asgi import concurrent_client

USERS = (1, 2, 3)
DURATION = 4.0
TTL = 0.1
MAX_READER_HOLD = 0.03
"""The guard holds while a load takes less than the TTL: the newer entry a writer put in the cache is
still there when the slow reader tries to put its older row back."""


async def test_no_read_after_an_acknowledged_write_returns_an_older_version(
    database_url: str, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Entries expire 100 ms after their last write, so readers keep missing and loading rows while writers commit.
    settings = Settings(redis_url=redis_url, database_url=database_url, cache_timeout_ms=2000, cache_ttl_seconds=TTL)
    app = create_app(settings)
    rng = random.Random(1234)

    async with concurrent_client(app) as client:
        repository_class = type(app.state.user_repository)
        original = repository_class.get_many_by_id

        async def slow_reader(self: Any, ids: list[int]) -> Any:
            rows = await original(self, ids)
            await asyncio.sleep(rng.uniform(0, MAX_READER_HOLD))  # hold the (possibly old) rows while writers commit
            return rows

        monkeypatch.setattr(repository_class, "get_many_by_id", slow_reader)
        user_cache = app.state.cache_manager.cache(USER_BY_ID)
        acked = dict.fromkeys(USERS, 1)
        violations: list[str] = []
        counts = {"reads": 0, "writes": 0}
        deadline = time.monotonic() + DURATION

        async def writer(n: int) -> None:
            while time.monotonic() < deadline:
                user_id = rng.choice(USERS)
                response = await client.patch(f"/users/{user_id}", json={"last_name": f"w{n}-{counts['writes']}"})
                assert response.status_code == 200, response.text
                acked[user_id] = max(acked[user_id], response.json()["version"])
                counts["writes"] += 1
                await asyncio.sleep(rng.uniform(0, 2 * TTL))  # gaps long enough for entries to expire

        async def reader() -> None:
            while time.monotonic() < deadline:
                user_id = rng.choice(USERS)
                floor = acked[user_id]
                response = await client.get(f"/users/{user_id}")
                assert response.status_code == 200, response.text
                version = response.json()["version"]
                if version < floor:
                    violations.append(f"user {user_id}: read version {version} after version {floor} was acked")
                counts["reads"] += 1

        await asyncio.gather(*(writer(n) for n in range(3)), *(reader() for _ in range(12)))

        # Once everything has settled, every read shows the last write, and so does the cache.
        for user_id in USERS:
            assert (await client.get(f"/users/{user_id}")).json()["version"] == acked[user_id]
            cached = await user_cache.get(user_id)
            assert cached is None or cached.version == acked[user_id]

    assert not violations, f"{len(violations)} stale reads, e.g. {violations[:3]}; {counts}"
    assert counts["writes"] > 30, counts
    assert counts["reads"] > 500, counts
    assert user_cache.stats.loads > 20
    assert user_cache.stats.stale_writes > 0  # the race happened, and the guard refused the old rows
    print(f"consistency: {counts}, {user_cache.stats}")
