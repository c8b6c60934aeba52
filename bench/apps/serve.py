"""Serve a bench app the way `python -m app` serves the service: uvicorn, one worker, uvloop, httptools, and
`gc.freeze()` after start-up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import uvicorn

from app.__main__ import freeze_startup_objects

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ("serve",)


def serve(app: Litestar) -> None:
    """Serve on `HOST`:`PORT` (default 127.0.0.1:8000) until interrupted, with the access log off."""
    app.on_startup.append(freeze_startup_objects)  # the same process tuning as the service: like with like
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
