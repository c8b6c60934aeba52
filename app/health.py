"""Liveness and readiness."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from app.cache import CacheHealth, CacheManager
from app.db import Database
from app.di import Injected

__all__ = ("DatabaseHealth", "HealthController", "Liveness", "Readiness")


class Liveness(msgspec.Struct, frozen=True, kw_only=True):
    """The process answers."""

    status: str = "ok"


class DatabaseHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the database answers, and every domain's readiness checks pass."""

    backend: str
    status: str
    """`ok` or `down`."""
    error: str | None = None
    """What failed: the exception's type, after `check-name: ` when a domain's check failed."""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the service can answer requests, and the state of what it depends on."""

    status: str
    """`ready` while the database answers (a dead cache only degrades performance), else `not_ready`."""
    database: DatabaseHealth
    cache: CacheHealth


class HealthController(Controller):
    """Probes for orchestrators and load balancers."""

    path = "/health"
    tags = ["health"]  # noqa: RUF012 - Litestar's declared attribute type

    @get("/live", operation_id="liveness", summary="Liveness probe", cache_control=None)
    async def live(self) -> Liveness:
        """Answer 200 while the process runs; touches nothing else."""
        return Liveness()

    @get(
        "/ready",
        operation_id="readiness",
        summary="Readiness probe",
        responses={503: ResponseSpec(data_container=Readiness, description="The database does not answer")},
    )
    async def ready(
        self, state: State, cache_manager: Injected[CacheManager], database: Injected[Database]
    ) -> Response[Readiness]:
        """Answer 200 while the database answers and every domain's checks pass (within `DATABASE_READY_TIMEOUT_MS`).

        The cache never fails this.
        """
        checks = [(name, check) for domain in state.domains for name, check in domain.readiness.items()]
        running = ""  # the domain check under way, named in the error if it fails
        try:
            async with asyncio.timeout(state.settings.database_ready_timeout_ms / 1000):
                await database.ping()
                for running, check in checks:  # noqa: B007 - read in the handler below
                    await check(database)
            status = DatabaseHealth(backend=database.name, status="ok")
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            error = f"{running}: {type(exc).__name__}" if running else type(exc).__name__
            status = DatabaseHealth(backend=database.name, status="down", error=error)
        ready = status.status == "ok"
        body = Readiness(status="ready" if ready else "not_ready", database=status, cache=await cache_manager.health())
        return Response(body, status_code=200 if ready else 503)
