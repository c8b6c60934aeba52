"""Serve a bench app the way `python -m app` serves the service: uvicorn, one worker, uvloop, httptools."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ("serve",)


def serve(app: Litestar) -> None:
    """Serve on `HOST`:`PORT` (default 127.0.0.1:8000) until interrupted, with the access log off."""
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
