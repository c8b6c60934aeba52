"""The hand-written baseline: one raw redis-py asyncio `GET` and one msgspec msgpack decode per request.

The fastest `GET /users/{user_id}` a user could write by hand on the same stack without our cache library:
a client (and its pool) created in the lifespan, a `Decoder(User)` built once, no DI, no breaker, no
versioning, no stats. The lifespan seeds the ten sample users under `BENCH_PREFIX` (default
`bench-baseline`). Run with `REDIS_URL=redis://... python -m bench.apps.baseline` (`HOST`, `PORT` too).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import msgspec
from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from redis.asyncio import Redis

from app.__main__ import freeze_startup_objects
from app.users.models import User
from bench.apps.serve import serve
from bench.fixtures import sample_users

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

__all__ = ("app",)

_PREFIX = os.environ.get("BENCH_PREFIX", "bench-baseline") + ":user:"
_DECODER = msgspec.msgpack.Decoder(User)


class _Connection:
    __slots__ = ("client",)

    def __init__(self) -> None:
        self.client: Redis | None = None


_redis = _Connection()


@asynccontextmanager
async def lifespan(_: Litestar) -> AsyncGenerator[None]:
    """Open the client, seed the users, close the client on shutdown."""
    client = Redis.from_url(os.environ["REDIS_URL"])
    encoder = msgspec.msgpack.Encoder()
    await client.mset({f"{_PREFIX}{user.id}": encoder.encode(user) for user in sample_users()})
    _redis.client = client
    try:
        yield
    finally:
        _redis.client = None
        await client.aclose()


@get("/users/{user_id:int}")
async def get_user(user_id: int) -> User:
    """Return a user from Redis."""
    data = await _redis.client.get(_PREFIX + str(user_id))  # pyright: ignore[reportOptionalMemberAccess]
    if data is None:
        raise NotFoundException(f"No user with user_id {user_id}")
    return _DECODER.decode(data)  # pyright: ignore[reportArgumentType] - bytes: decode_responses is off


app = Litestar(route_handlers=[get_user], lifespan=[lifespan], openapi_config=None, on_startup=[freeze_startup_objects])

if __name__ == "__main__":
    serve(app, "bench.apps.baseline:app")
