"""Open and close the database, and build every domain's objects over it and the cache manager on `app.state`.

The cache manager and the typed caches are `CachePlugin`'s (app/cache/plugin.py): its lifespan runs before
this one, so the manager is on `app.state` when the domains are built, and is closed after the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.config import redact_url
from app.db import UnavailableDatabase, dialect_of, migrate, open_database
from app.db.outbox import DatabaseOutbox
from app.warmup import start_warm_up

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Sequence

    from litestar import Litestar

    from app.cache import CacheManager
    from app.config import Settings
    from app.db import Database
    from app.domain import Domain

__all__ = (
    "EXIT_DATABASE_UNREACHABLE",
    "connect_database",
    "lifespan",
    "open_migrated_database",
)

logger = logging.getLogger("app")


EXIT_DATABASE_UNREACHABLE = 3
"""Exit status when the database did not answer within `DATABASE_CONNECT_TIMEOUT_SECONDS` of start-up."""

_FIRST_ATTEMPT_SECONDS = 2.0
"""The first connection is tried before serving, bounded by this; later attempts run while liveness answers."""
_MAX_ATTEMPT_SECONDS = 10.0
_MAX_BACKOFF_SECONDS = 5.0


async def open_migrated_database(
    settings: Settings, domains: Sequence[Domain], *, connect_timeout: float = 10.0
) -> Database:
    """Open the database the settings describe, apply every domain's migrations and (optionally) seeds."""
    database = await open_database(settings, connect_timeout=connect_timeout)
    try:
        await migrate(
            database,
            [(domain.name, domain.migrations) for domain in domains if domain.migrations is not None],
            [domain.seed for domain in domains if domain.seed is not None] if settings.seed_sample_users else (),
        )
    except BaseException:
        await database.close()
        raise
    return database


def _describe_failure(settings: Settings, exc: BaseException) -> str:
    """The reason on one line, with the URL's password (should a driver quote it) blanked out."""
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    password = urlsplit(settings.database_url).password if settings.database_url else None
    return reason.replace(password, "***") if password else reason


def _database_url(settings: Settings) -> str:
    return redact_url(settings.database_url) if settings.database_url else f"sqlite:///{settings.sqlite_path}"


async def connect_database(
    settings: Settings, domains: Sequence[Domain], *, first_attempt_only: bool = False, started: float | None = None
) -> Database | None:
    """Open and migrate the database, retrying with backoff until `DATABASE_CONNECT_TIMEOUT_SECONDS` after `started`.

    Logs one WARNING line per failed attempt naming `DATABASE_URL` (password redacted) and the reason.

    Args:
        settings: The application settings.
        domains: Whose migrations and seeds to apply.
        first_attempt_only: Try once (bounded by a short timeout) and return `None` on failure.
        started: When start-up began (`time.monotonic()`); default now.

    Returns:
        The open database, or `None` when the deadline passed (or the one attempt failed).
    """
    started = time.monotonic() if started is None else started
    deadline = started + settings.database_connect_timeout_seconds
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        bound = _FIRST_ATTEMPT_SECONDS if first_attempt_only else min(_MAX_ATTEMPT_SECONDS, max(remaining, 0.5))
        try:
            async with asyncio.timeout(bound):
                return await open_migrated_database(settings, domains, connect_timeout=bound)
        except Exception as exc:  # any failure to connect is retried until the deadline
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # A driver turned our cancellation (shutdown) into a connection error: stop, do not retry.
                raise asyncio.CancelledError from exc
            reason = _describe_failure(settings, exc)
        remaining = deadline - time.monotonic()
        if first_attempt_only or remaining <= 0:
            logger.warning(
                "database: connection attempt %d to DATABASE_URL=%s failed: %s",
                attempt,
                _database_url(settings),
                reason,
            )
            return None
        delay = min(delay * 2, _MAX_BACKOFF_SECONDS, remaining)
        logger.warning(
            "database: connection attempt %d to DATABASE_URL=%s failed: %s; retrying in %.1fs",
            attempt,
            _database_url(settings),
            reason,
            delay,
        )
        await asyncio.sleep(delay)


def _exit_process() -> None:
    """Leave with `EXIT_DATABASE_UNREACHABLE`: the start-up failed, and the line saying why is logged."""
    logging.shutdown()
    os._exit(EXIT_DATABASE_UNREACHABLE)


async def _connect_in_background(app: Litestar, settings: Settings, domains: Sequence[Domain], started: float) -> None:
    database = await connect_database(settings, domains, started=started)
    if database is None:
        logger.error(
            "database: no connection to DATABASE_URL=%s within DATABASE_CONNECT_TIMEOUT_SECONDS=%gs; exiting",
            _database_url(settings),
            settings.database_connect_timeout_seconds,
        )
        on_unreachable: Callable[[], None] = app.state.get("on_database_unreachable") or _exit_process
        on_unreachable()
        return
    _use_database(app, domains, database)
    logger.info("ready: %s", settings.describe())


def _use_database(app: Litestar, domains: Sequence[Domain], database: Database) -> None:
    """Put `database` and every domain's objects over it on `app.state`, where the providers read them."""
    manager: CacheManager = app.state.cache_manager
    app.state.database = database
    if manager.fence is not None:
        manager.fence.reader = DatabaseOutbox(database)
    for domain in domains:
        if domain.services is None:
            continue
        provided = domain.services(database, manager)
        if provided.keys() != domain.provides.keys():
            raise TypeError(
                f"domain {domain.name!r}: services returned {sorted(provided)}, not {sorted(domain.provides)}"
            )
        for name, value in provided.items():
            app.state[name] = value


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a background task of the lifespan and wait (at most 5 s) for it to end."""
    task.cancel()
    with suppress(asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(5):
            await task


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None]:
    """Open the database and build every domain's objects over it and the cache manager (on `app.state`).

    The first database connection is tried once before serving. If it fails, start-up completes anyway (so
    `/health/live` answers), database-bound requests answer 503, and a background task retries with backoff
    for `DATABASE_CONNECT_TIMEOUT_SECONDS`; after that the process exits with one line and status 3.
    """
    settings: Settings = app.state.settings
    domains: Sequence[Domain] = app.state.domains
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        manager: CacheManager = app.state.cache_manager  # built and started by `CachePlugin`, whose lifespan runs first
        database = await connect_database(settings, domains, first_attempt_only=True, started=started)
        connecting = database is None
        if database is None:
            database = UnavailableDatabase(dialect_of(settings), "connecting to the database")

        async def close_database() -> None:
            await app.state.database.close()

        stack.push_async_callback(close_database)
        if manager.fence is not None:  # stops reading the outbox before the database closes (closed again later)
            stack.push_async_callback(manager.fence.close)
        _use_database(app, domains, database)
        if manager.fence is not None and not connecting:
            with suppress(TimeoutError):  # trusted from the first request on, unless this takes too long
                async with asyncio.timeout(_FIRST_ATTEMPT_SECONDS):
                    await manager.fence.sync()
        warming = None if connecting else start_warm_up(domains, database, manager, settings.cache_warmup_entries)
        if warming is not None:
            stack.push_async_callback(_cancel, warming)
        if connecting:
            task = asyncio.create_task(_connect_in_background(app, settings, domains, started))
            stack.push_async_callback(_cancel, task)
        health = await manager.health()
        if health.status != "ok":
            logger.warning(
                "cache backend %s does not answer yet (%s); serving from the database", health.backend, health.error
            )
        logger.info("%s: %s", "starting, database not connected yet" if connecting else "ready", settings.describe())
        yield
