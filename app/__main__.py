"""`python -m app`: serve with uvicorn (uvloop, httptools) or granian (`SERVER`); what the container image runs.

`python -m app --help` lists the settings; `python -m app check-config` validates them and exits.
"""

from __future__ import annotations

import gc
import signal
import sys
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from granian import Granian
from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels

from app.config import ConfigError, Settings
from app.logs import logging_config
from app.server import create_app
from app.slow_clients import uvicorn_protocol
from app.usage import effective_settings, usage

if TYPE_CHECKING:
    from types import FrameType

    from litestar import Litestar

__all__ = ("GRACEFUL_SHUTDOWN_SECONDS", "app_from_env", "main")

APP_FACTORY = "app.__main__:app_from_env"

GRACEFUL_SHUTDOWN_SECONDS = 20
"""On SIGTERM, in-flight requests get this long to finish; then the lifespan closes the pools and the process exits.
Shorter than Kubernetes' default 30 s grace period minus the manifests' 5 s preStop pause."""


def app_from_env() -> Litestar:
    """Build the application from the environment; the server calls this once in each worker process."""
    app = create_app(Settings.from_env())
    app.on_startup.append(freeze_startup_objects)
    return app


def freeze_startup_objects() -> None:
    """Collect once, then move every object start-up made (modules, the app, pools) to the permanent generation.

    The collector then never walks them again: a full collection during serving looks only at what requests
    allocated, which cut the p99 spikes full collections caused (bench/README.md).
    """
    gc.collect()
    gc.freeze()


def _exit_successfully(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, or run the command in `argv` (default `sys.argv[1:]`; see `--help`).

    A bad setting exits with status 2 and one line; so does an unknown argument.
    """
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "serve"
    if command in {"-h", "--help", "help"}:
        print(usage())
        return
    if len(args) > 1 or command not in {"serve", "check-config"}:
        print(f"python -m app: unexpected argument {' '.join(args)!r}; see python -m app --help", file=sys.stderr)
        raise SystemExit(2)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if command == "check-config":
        print(effective_settings(settings))
        return
    # uvicorn handles SIGTERM (drain, then lifespan shutdown), restores the handler it found, and raises the signal
    # again to die by it (status 143 under tini). A completed graceful shutdown is a success: exit with 0 instead.
    # (A SIGTERM before uvicorn takes over also exits with 0: nothing was being served yet.)
    signal.signal(signal.SIGTERM, _exit_successfully)
    if settings.server == "granian":
        _serve_with_granian(settings)
    else:
        _serve_with_uvicorn(settings)


def _serve_with_uvicorn(settings: Settings) -> None:
    # An import string and a factory, not an app object: uvicorn needs one to start WORKERS > 1 processes,
    # and each worker then builds its own app (its own pools) from the same environment.
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools, with the header and body read timeouts uvicorn lacks (app.slow_clients).
        http=cast("Any", uvicorn_protocol(settings)),
        timeout_keep_alive=settings.http_keep_alive_seconds,
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _serve_with_granian(settings: Settings) -> None:
    # The same factory in every worker process. Granian handles SIGTERM and SIGINT itself: it stops accepting,
    # lets the workers finish (killing them after GRACEFUL_SHUTDOWN_SECONDS) and exits with 0.
    Granian(
        APP_FACTORY,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        websockets=False,
        # Granian's one read timeout: a connection, new or kept alive, gets this long to send a request's headers
        # (it has no separate keep-alive idle timeout and no body read timeout).
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.http_header_timeout_seconds * 1000)),
        log_dictconfig=logging_config(settings.log_level, settings.log_format),
        log_level=LogLevels(settings.log_level.lower()),
        log_access=settings.log_level == "DEBUG",
        workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
    ).serve()


if __name__ == "__main__":
    main()
