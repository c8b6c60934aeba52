"""An HTTP client that drives the app in the test's own event loop, so requests really run concurrently.

Litestar's AsyncTestClient sends each request through a blocking portal, one at a time; tests about races
and outages need requests in flight together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar


@asynccontextmanager
async def concurrent_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    asgi_app: Any = app
    transport = httpx.ASGITransport(app=asgi_app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
