"""`create_app(settings)`: a pure function from settings (and the domains to mount) to a Litestar application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Contact

from app.cache.plugin import CachePlugin
from app.deps import dependencies
from app.docs import docs_assets, render_plugins
from app.domains import DOMAINS
from app.errors import exception_handlers
from app.health import HealthController
from app.inputs import StrictInputs, StrictRequest
from app.lifespan import lifespan
from app.metrics import install_metrics, metrics, metrics_port_server
from app.middleware import RequestMiddleware
from app.openapi import refine_openapi

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.cache import CacheBackend
    from app.config import Settings
    from app.domain import Domain

__all__ = ("create_app",)

MAX_BODY_BYTES = 64 * 1024


def create_app(
    settings: Settings, *, domains: Sequence[Domain] | None = None, cache_backend: CacheBackend | None = None
) -> Litestar:
    """Build the application. Nothing connects until the lifespan starts.

    Args:
        settings: The configuration.
        domains: The domains to mount; default `app.domains.DOMAINS`.
        cache_backend: Use this backend instead of the one `settings` describe (for tests).
    """
    domains = DOMAINS if domains is None else tuple(domains)
    if len({domain.name for domain in domains}) != len(domains):
        raise ValueError(f"domain names must be unique: {[domain.name for domain in domains]}")
    state = State({"settings": settings, "domains": domains})
    strict_inputs = StrictInputs()
    app = Litestar(
        # With METRICS_PORT set, /metrics is served only there (app.metrics.metrics_port_server), not here.
        route_handlers=[
            *(controller for domain in domains for controller in domain.controllers),
            HealthController,
            docs_assets,
            *([metrics] if settings.metrics_port is None else []),
        ],
        dependencies=dependencies(state, domains),
        # The plugin's lifespan runs first: it puts the cache manager on `state` before `lifespan` builds the domains.
        plugins=[
            CachePlugin(settings.cache_config(), [spec for d in domains for spec in d.caches], backend=cache_backend)
        ],
        lifespan=[lifespan, metrics_port_server],
        state=state,
        exception_handlers=exception_handlers,
        request_class=StrictRequest,
        before_request=strict_inputs,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Users API",
            version="0.1.0",
            description="Users behind typed, dependency-injected, Redis-backed caches.",
            contact=Contact(name="Users API"),
            path="/schema",
            render_plugins=render_plugins(),
        ),
        logging_config=None,  # `python -m app` configures logging (app.logs), once per process, before serving
    )
    refine_openapi(app, domains)
    strict_inputs.index(app)
    http_metrics = install_metrics(app)  # a registry of this app's own
    # Outermost, around the router too, so 404s, 405s and path-type 400s also carry a request id and are counted.
    app.asgi_handler = RequestMiddleware(
        app.asgi_handler,
        http_metrics,
        max_in_flight=settings.max_in_flight,
        retry_after=settings.overload_retry_after_seconds,
    )
    return app
