"""Serve a bench app the way `python -m app` serves the service: one worker, uvicorn (uvloop, httptools) or
granian (`SERVER=granian`, uvloop), access log off. (The apps freeze gc after start-up like the service:
`on_startup=[freeze_startup_objects]`.)"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import uvicorn
from granian import Granian
from granian.constants import Interfaces, Loops
from granian.log import LogLevels

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ("serve",)


def serve(app: Litestar, target: str) -> None:
    """Serve `app` (importable as `target`, for granian) on `HOST`:`PORT` (default 127.0.0.1:8000) until interrupted."""
    if os.environ.get("SERVER") == "granian":
        Granian(
            target,
            address=os.environ.get("HOST", "127.0.0.1"),
            port=int(os.environ.get("PORT", "8000")),
            interface=Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            websockets=False,
            log_level=LogLevels.warning,
            log_access=False,
        ).serve()
        return
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
