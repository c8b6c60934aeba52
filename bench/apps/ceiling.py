"""The ceiling: `GET /users/{user_id}` answered with a constant msgspec Struct, without any I/O.

No Litestar app that returns a `User` can be faster; every other HTTP case is reported as a fraction of it.
Run with `python -m bench.apps.ceiling` (`HOST`, `PORT` from the environment).
"""

from __future__ import annotations

from litestar import Litestar, get

from app.__main__ import freeze_startup_objects
from app.users.models import User
from bench.apps.serve import serve
from bench.fixtures import sample_users

__all__ = ("app",)

_USERS = {user.id: user for user in sample_users()}
_DEFAULT = _USERS[1]


@get("/users/{user_id:int}")
async def get_user(user_id: int) -> User:
    """Return a prebuilt user."""
    return _USERS.get(user_id, _DEFAULT)


app = Litestar(route_handlers=[get_user], openapi_config=None, on_startup=[freeze_startup_objects])

if __name__ == "__main__":
    serve(app, "bench.apps.ceiling:app")
