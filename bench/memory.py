"""Redis memory per cached user: `used_memory` growth over many users, against the baseline's one key per user.

`python -m bench.memory [USERS] [REDIS_URL]` (default 100,000 users on a throw-away redis-server; a given server
is flushed). Each case starts from an empty database and writes every user once:

- `baseline`: the hand-written baseline's one key per user (`bench.apps.baseline`: a msgpack `User`, no TTL);
- `baseline+EX`: the same key with a TTL (`SET ... EX`), for reference: Redis keeps every TTL in a second table,
  ~50 bytes a key (the library's entries all have one; the target compares with `baseline`);
- `by-id entry`: the library's entry of `USER_BY_ID` (`Cache.set_many`) under the service's default settings
  (the lifetimes of `Settings` without environment: its soft TTL adds 8 bytes to each entry's header; the key
  prefix is the default `cache`);
- `batch path`: what `POST /users/lookup` by id caches for a user it loads (`UserService.lookup`, 100 ids a call);
- `uuid path`: what a lookup by UUID caches (`UserService.lookup` by UUID).

`measure(url, users)` returns the figures (bytes per user) for `make bench` to report.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, cast

import msgspec
from redis.asyncio import Redis

from app.cache import CacheManager
from app.cache.config import CacheConfig
from app.config import Settings
from app.users.caches import UserCaches
from app.users.service import UserService
from bench.fixtures import synthetic_users
from tests.servers import RedisServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from uuid import UUID

    from app.users.models import User
    from app.users.repository import UserRepository

__all__ = ("BASELINE_PREFIX", "measure")

USERS = 100_000
BATCH = 100
BASELINE_PREFIX = "bench-baseline:user:"


class _Rows:
    """The repository's two batch reads over users held in memory: the database is not what is measured."""

    def __init__(self, users: Sequence[User]) -> None:
        self._by_id = {user.id: user for user in users}
        self._by_uuid = {user.uuid: user for user in users}

    async def get_many_by_id(self, ids: Sequence[int]) -> dict[int, User]:
        return {user_id: self._by_id[user_id] for user_id in ids if user_id in self._by_id}

    async def get_many_by_uuid(self, uuids: Sequence[UUID]) -> dict[UUID, User]:
        return {uuid: self._by_uuid[uuid] for uuid in uuids if uuid in self._by_uuid}


async def _used_memory(client: Redis) -> int:
    info = await client.info("memory")  # pyright: ignore[reportUnknownMemberType]
    return int(info["used_memory"])


async def _growth(client: Redis, write: Callable[[], Awaitable[None]]) -> int:
    await client.flushall()
    before = await _used_memory(client)
    await write()
    return await _used_memory(client) - before


async def measure(url: str, users: int = USERS) -> dict[str, float]:
    """Bytes of `used_memory` per user for each case, every case from an empty database (flushes `url`)."""
    rows = synthetic_users(users)
    client = Redis.from_url(url)
    # The service's lifetimes (its soft TTL makes each entry's header 8 bytes longer), without its consistency
    # fence: with no outbox to sync from, the fence would never trust the cache and nothing would be written.
    policy = Settings.from_env({}, env_file=None).cache_policy
    manager = CacheManager.from_config(CacheConfig(url=url, timeout=5.0, policy=policy))
    caches = UserCaches.of(manager)
    service = UserService(
        repository=cast("UserRepository", _Rows(rows)),
        user_by_id=caches.by_id,
        id_by_uuid=caches.id_by_uuid,
    )
    batches = [rows[start : start + BATCH] for start in range(0, users, BATCH)]
    encode = msgspec.msgpack.Encoder().encode

    async def baseline() -> None:
        for batch in batches:
            await client.mset({f"{BASELINE_PREFIX}{user.id}": encode(user) for user in batch})

    async def baseline_ex() -> None:
        for batch in batches:
            async with client.pipeline(transaction=False) as pipe:
                for user in batch:
                    pipe.set(f"{BASELINE_PREFIX}{user.id}", encode(user), ex=3600)
                await pipe.execute()  # pyright: ignore[reportUnknownMemberType]

    async def by_id() -> None:
        for batch in batches:
            await caches.by_id.set_many({user.id: user for user in batch})

    async def batch_path() -> None:
        for batch in batches:
            await service.lookup(ids=[user.id for user in batch])

    async def uuid_path() -> None:
        for batch in batches:
            await service.lookup(uuids=[user.uuid for user in batch])

    try:
        cases = {
            "baseline": baseline,
            "baseline+EX": baseline_ex,
            "by-id entry": by_id,
            "batch path": batch_path,
            "uuid path": uuid_path,
        }
        return {name: await _growth(client, write) / users for name, write in cases.items()}
    finally:
        await client.flushall()
        await manager.close()
        await client.aclose()


def main() -> None:
    """Print bytes per user for each case."""
    users = int(sys.argv[1]) if len(sys.argv) > 1 else USERS
    server = None if len(sys.argv) > 2 else RedisServer().start()
    url = sys.argv[2] if server is None else server.url
    try:
        figures = asyncio.run(measure(url, users))
    finally:
        if server is not None:
            server.close()
    baseline = figures["baseline"]
    print(f"Redis used_memory growth per user, {users:,} users")
    for name, value in figures.items():
        print(f"  {name:<12} {value:7.1f} bytes  ({value / baseline:.2f}x the baseline's key)")


if __name__ == "__main__":
    main()
