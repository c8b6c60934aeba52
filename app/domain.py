"""`Domain`: what one domain (a folder under `app/`, or a test's) declares for the application to mount it.

The application loops over a list of these (`app/domains.py`): routes, typed caches, dependencies,
migrations, seeds, readiness and OpenAPI refinements all come from the declaration, so adding a domain
touches its own folder and one line in that list. This module sits below the domains and imports none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgspec
from litestar.openapi.spec import Schema
from litestar.types import ControllerRouterHandler

from app.cache import CacheManager, CacheSpec
from app.db import Database, Migrations, Seed

__all__ = ("Domain", "OpenAPIRefinement", "ReadinessCheck", "ServiceFactory", "WarmUp")

ServiceFactory: TypeAlias = Callable[[Database, CacheManager], Mapping[str, object]]
"""Builds a domain's objects over the shared database and cache manager, by the names handlers ask for."""

ReadinessCheck: TypeAlias = Callable[[Database], Awaitable[object]]
"""Raises unless the domain can serve (e.g. its table answers); run by `/health/ready` after the ping."""

WarmUp: TypeAlias = Callable[[Database, CacheManager, int], Awaitable[int]]
"""Loads up to `count` of the domain's likely hottest entries into its caches; returns how many it wrote."""
OpenAPIRefinement: TypeAlias = Callable[[dict[str, Schema]], None]
"""Corrects the generated component schemas (by Struct name) where Litestar cannot express the contract."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    """One domain: its routes, caches, dependencies, tables and checks.

    Example:
        ```python
        ORDERS = Domain(
            name="orders",
            controllers=[OrderController],
            caches=[ORDER_BY_ID],
            provides={"order_service": OrderService},
            services=lambda db, caches: {"order_service": OrderService(db, caches.cache(ORDER_BY_ID))},
            migrations=Migrations("app.orders.migrations"),
        )
        ```
    """

    name: str
    """Unique among the domains; its migrations are recorded under it in `schema_migrations`."""
    controllers: Sequence[ControllerRouterHandler] = ()
    """Controllers, routers and handlers mounted on the application."""
    caches: Sequence[CacheSpec[Any, Any]] = ()
    """The typed caches the domain declares: `CachePlugin` builds each on the application's `CacheManager` at
    start-up and injects it by its name (`CacheSpec.dependency`)."""
    provides: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Name to type of every object `services` returns: each becomes a zero-parameter provider of that name
    (handlers take it as `Injected[T]`). Names are unique across domains."""
    services: ServiceFactory | None = None
    """Called by the lifespan with the database and the cache manager (and again, with the real database,
    when the first connection comes late); returns exactly the names of `provides`."""
    migrations: Migrations | None = None
    """The domain's SQL scripts, one folder per dialect."""
    seed: Seed | None = None
    """Fills the domain's empty tables at start-up when `SEED_SAMPLE_USERS` is on."""
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict[str, ReadinessCheck])
    """Named checks `/health/ready` runs after the database answers a ping."""
    closed_bodies: Sequence[type[msgspec.Struct]] = ()
    """Request bodies with `forbid_unknown_fields`: published with `additionalProperties: false`."""
    refine_openapi: OpenAPIRefinement | None = None
    """Further corrections of the domain's schemas in the OpenAPI document."""
    warm_up: WarmUp | None = None
    """Run at start-up, in the background, when `CACHE_WARMUP_ENTRIES` is above 0 (`app.warmup`)."""

    def __post_init__(self) -> None:
        """Refuse a declaration that provides names without a factory to build them."""
        if self.provides and self.services is None:
            raise ValueError(f"domain {self.name!r} provides {sorted(self.provides)} but has no services factory")
