"""Prometheus metrics: `GET /metrics`, cache counters read at scrape time, HTTP request counters.

Nothing here is registered in prometheus_client's global registry: `install_metrics(app)` gives each application a
`CollectorRegistry` of its own (on `app.state.metrics_registry`), so tests can build as many apps as they like.
Neither the cache nor the request path touch a prometheus_client object: the caches bump plain integers
(`CacheStats`, `LatencyHistogram`) and the HTTP middleware does the same; collectors turn them into metric
families only when `/metrics` is scraped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import get
from litestar.datastructures import State
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.cache import BreakerState, CacheManager, CacheStats, CoalescingBackend
from app.cache.stats import LatencyHistogram

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator

    from litestar import Litestar

    from app.cache import InvalidationBus
    from app.config import Settings

__all__ = (
    "METRICS_MEDIA_TYPE",
    "METRICS_PATH",
    "UNMATCHED_ROUTE",
    "CacheMetricsCollector",
    "HttpMetrics",
    "install_metrics",
    "metrics",
    "metrics_port_server",
)

logger = logging.getLogger("app.metrics")

METRICS_PATH = "/metrics"
METRICS_MEDIA_TYPE = CONTENT_TYPE_PLAIN_0_0_4.removesuffix("; charset=utf-8")
"""What `generate_latest` writes: the classic text format, which every Prometheus version reads (Litestar adds
the `charset=utf-8` of `CONTENT_TYPE_PLAIN_0_0_4` itself, as to every `text/*` response)."""

UNMATCHED_ROUTE = "unmatched"
"""The `route` label of requests no route matched (404s, 405s, malformed path parameters)."""

HTTP_BUCKETS: tuple[float, ...] = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the request duration histogram: the service answers a cache hit well under 1 ms."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
"""Methods kept as label values; any other (a client can send anything) is counted as `other`."""

_LOOKUPS: dict[str, tuple[str, str]] = {
    "hits": ("remote", "hit"),
    "misses": ("remote", "miss"),
    "negative_hits": ("remote", "negative_hit"),
    "near_hits": ("near", "hit"),
    "near_misses": ("near", "miss"),
}
"""`CacheStats` fields that partition the lookups of one tier, as `(tier, result)` of `cache_lookups_total`.

Every other field becomes a counter of its own, `cache_<field>_total{cache}`, so a field added to `CacheStats`
is exported without a change here.
"""

_HELP: dict[str, str] = {
    "loads": "Keys passed to a loader (cache-aside misses that reached the source of truth).",
    "coalesced": "Callers that waited on a load another caller had started (single-flight).",
    "errors": "Backend calls that failed; the call degraded to a miss or a no-op.",
    "decode_errors": "Entries that failed to decode and were deleted (also counted as misses).",
    "stale_writes": "Versioned writes refused because a newer version was already cached.",
    "stale_serves": "Entries served past their soft TTL while one caller refreshed them (also counted as hits).",
    "refreshes": "Background refreshes started (stale-while-revalidate or early refresh).",
    "near_invalidations": "Near-cache (L1) entries dropped because this or another process changed them.",
}
"""HELP texts of the per-field counters; a field missing here still gets a generic one."""


class CacheMetricsCollector:
    """Read the cache manager's counters, breaker and latency histograms when the registry is scraped.

    Metrics (label `cache` is the cache namespace, `backend` the backend name such as `redis`):

    - `cache_lookups_total{cache,tier,result}`: lookups of each tier, `tier` `near` (in-process L1) with
      `result` `hit|miss`, or `remote` (the backend) with `result` `hit|miss|negative_hit`;
    - `cache_<field>_total{cache}` for every other `CacheStats` field (`loads`, `coalesced`, `errors`, ...);
    - `cache_backend_reads_total{backend}` and `cache_batched_reads_total{backend}`: what request coalescing
      did (backend reads sent, and reads that rode along with another read of the same tick), when it is on;
    - `cache_invalidation_subscribed{backend}` and `cache_invalidation_failures_total{backend}`: the near-cache
      invalidation listener, when the near cache is on;
    - `cache_breaker_state{backend,state}`: 1 for the circuit breaker's current state, 0 for the others;
    - `cache_breaker_lag_timeouts_total{backend}`: calls that timed out while the event loop lagged (not failures);
    - `cache_operation_duration_seconds{backend,operation}`: backend call latency, as the breaker measures it.

    The last two exist only when the backend has a circuit breaker (Redis), and nothing is reported before the
    lifespan has built the manager.
    """

    __slots__ = ("_state",)

    def __init__(self, state: State) -> None:
        """Read the manager from `state.cache_manager` at each scrape (the lifespan sets it)."""
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """Build the cache metric families from the current counters."""
        manager = self._state.get("cache_manager")
        if not isinstance(manager, CacheManager):
            return
        lookups = CounterMetricFamily(
            "cache_lookups_total",
            "Cache lookups by tier (near: in-process L1, remote: the backend) and result.",
            labels=("cache", "tier", "result"),
        )
        counters = {
            field: CounterMetricFamily(
                f"cache_{field}_total", _HELP.get(field, f"CacheStats.{field} of each cache."), labels=("cache",)
            )
            for field in CacheStats.__struct_fields__
            if field not in _LOOKUPS
        }
        for namespace, stats in manager.stats().items():
            for field, (tier, result) in _LOOKUPS.items():
                lookups.add_metric((namespace, tier, result), getattr(stats, field))
            for field, family in counters.items():
                family.add_metric((namespace,), getattr(stats, field))
        yield lookups
        yield from counters.values()
        if isinstance(manager.backend, CoalescingBackend):
            yield from _coalescing(manager.backend)
        if manager.bus is not None:
            yield from _invalidations(manager.bus, manager.backend.name)
        breaker = manager.breaker
        if breaker is None:
            return
        current = breaker.state
        state = GaugeMetricFamily(
            "cache_breaker_state",
            "Circuit breaker state of the cache backend: 1 for the current state, 0 for the others.",
            labels=("backend", "state"),
        )
        for candidate in BreakerState:
            state.add_metric((breaker.name, candidate.value), 1.0 if candidate is current else 0.0)
        yield state
        lag_timeouts = CounterMetricFamily(
            "cache_breaker_lag_timeouts",
            "Cache calls that ran out of time while the event loop itself lagged; not counted against the backend.",
            labels=("backend",),
        )
        lag_timeouts.add_metric((breaker.name,), breaker.lag_timeouts)
        yield lag_timeouts
        yield _histogram(
            "cache_operation_duration_seconds",
            "Duration of cache backend calls, failures and timeouts included.",
            ("backend", "operation"),
            {(breaker.name, operation): histogram for operation, histogram in breaker.latency.items()},
        )


def _invalidations(bus: InvalidationBus, backend: str) -> Iterator[Metric]:
    subscribed = GaugeMetricFamily(
        "cache_invalidation_subscribed",
        "1 while the near-cache invalidation listener is subscribed (near caches on), else 0.",
        labels=("backend",),
    )
    subscribed.add_metric((backend,), 1.0 if bus.connected.is_set() else 0.0)
    failures = CounterMetricFamily(
        "cache_invalidation_failures",
        "Near-cache invalidation subscriptions lost or refused (each is retried with backoff).",
        labels=("backend",),
    )
    failures.add_metric((backend,), bus.failures)
    yield subscribed
    yield failures


def _coalescing(backend: CoalescingBackend) -> Iterator[Metric]:
    reads = CounterMetricFamily(
        "cache_backend_reads",
        "Reads request coalescing sent to the backend (one per tick with reads).",
        labels=("backend",),
    )
    reads.add_metric((backend.name,), backend.batches)
    batched = CounterMetricFamily(
        "cache_batched_reads",
        "Reads that rode along with another read of the same tick (no backend round trip of their own).",
        labels=("backend",),
    )
    batched.add_metric((backend.name,), backend.batched_calls)
    writes = CounterMetricFamily(
        "cache_backend_writes",
        "Writes request coalescing sent to the backend (one pipeline per tick and kind of write).",
        labels=("backend",),
    )
    writes.add_metric((backend.name,), backend.write_batches)
    batched_writes = CounterMetricFamily(
        "cache_batched_writes",
        "Writes that rode along with another write of the same tick (no backend round trip of their own).",
        labels=("backend",),
    )
    batched_writes.add_metric((backend.name,), backend.batched_writes)
    yield reads
    yield batched
    yield writes
    yield batched_writes


class _Series:
    """The counters of one `(method, route, status)`; the histogram is shared by the statuses of a route."""

    __slots__ = ("count", "histogram")

    def __init__(self, histogram: LatencyHistogram) -> None:
        self.count = 0
        self.histogram = histogram


class HttpMetrics:
    """Request counters of one application, plain integers bumped by `RequestMiddleware`.

    Metrics:

    - `http_requests_total{method,route,status}`;
    - `http_request_duration_seconds{method,route}`, from the request's arrival to its last response byte;
    - `http_requests_in_progress` (a scrape counts itself);
    - `http_requests_shed_total`, requests answered 503 beyond the in-flight bound.

    `route` is the matched route's path template (`/users/{user_id}`), or `unmatched`; `/metrics` is not counted.
    """

    __slots__ = ("_lookup", "buckets", "durations", "in_progress", "requests", "shed")

    def __init__(self, buckets: tuple[float, ...] = HTTP_BUCKETS) -> None:
        """Start with no requests; `buckets` are the duration histogram's upper bounds in seconds."""
        self.buckets = buckets
        self.requests: dict[tuple[str, str, int], _Series] = {}
        """By label values."""
        self.durations: dict[tuple[str, str], LatencyHistogram] = {}
        """By label values."""
        self.in_progress = 0
        self.shed = 0
        """Requests answered 503 at once because the worker was at its in-flight bound (`MAX_IN_FLIGHT`)."""
        self._lookup: dict[tuple[str, str | None, int], _Series] = {}
        """By what the middleware sees (`None` for no route): one dictionary look-up per request."""

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Count one finished request (`route` is `None` when no route matched)."""
        series = self._lookup.get((method, route, status))
        if series is None:
            series = self._series(method, route, status)
            if series is None:
                return
        series.count += 1
        series.histogram.observe(seconds)

    def _series(self, method: str, route: str | None, status: int) -> _Series | None:
        if route == METRICS_PATH:
            return None
        label_method = method if method in _METHODS else "other"
        label_route = UNMATCHED_ROUTE if route is None else route
        series = self.requests.get((label_method, label_route, status))
        if series is None:
            histogram = self.durations.get((label_method, label_route))
            if histogram is None:
                histogram = self.durations[label_method, label_route] = LatencyHistogram(self.buckets)
            series = self.requests[label_method, label_route, status] = _Series(histogram)
        if label_method == method:  # a client can send any method: only known ones are remembered as they came
            self._lookup[method, route, status] = series
        return series

    def collect(self) -> Iterator[Metric]:
        """Build the HTTP metric families from the current counters."""
        requests = CounterMetricFamily(
            "http_requests_total", "HTTP requests by method, route and status.", labels=("method", "route", "status")
        )
        for (method, route, status), series in self.requests.items():
            requests.add_metric((method, route, str(status)), series.count)
        yield requests
        yield _histogram(
            "http_request_duration_seconds",
            "HTTP request duration, from arrival to the last response byte.",
            ("method", "route"),
            self.durations,
        )
        yield GaugeMetricFamily("http_requests_in_progress", "HTTP requests being served.", value=self.in_progress)
        yield CounterMetricFamily(
            "http_requests_shed",
            "HTTP requests answered 503 at once because the worker was at its in-flight bound (MAX_IN_FLIGHT).",
            value=self.shed,
        )


def _histogram(
    name: str, documentation: str, labels: tuple[str, ...], histograms: dict[Any, LatencyHistogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, histogram in histograms.items():
        family.add_metric(values, histogram.cumulative(), histogram.sum)
    return family


def install_metrics(app: Litestar) -> HttpMetrics:
    """Give `app` a registry of its own (`app.state.metrics_registry`); return the HTTP counters to bump.

    `app.middleware.RequestMiddleware` counts the requests into what this returns.
    """
    registry = CollectorRegistry()
    http = HttpMetrics()
    registry.register(http)
    registry.register(CacheMetricsCollector(app.state))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    app.state.metrics_registry = registry
    return http


@get(
    METRICS_PATH,
    operation_id="metrics",
    summary="Prometheus metrics",
    description="Cache, HTTP and process metrics of this process, in the Prometheus text format (0.0.4).",
    tags=["observability"],
    media_type=METRICS_MEDIA_TYPE,
)
async def metrics(state: State) -> bytes:
    """Serve this application's registry (async: the counters are read on the event loop that bumps them)."""
    registry: CollectorRegistry = state.metrics_registry
    return generate_latest(registry)


_SCRAPE_READ_TIMEOUT = 5.0
"""Seconds a scraper gets to send its request line and headers to the metrics port."""


async def _serve_scrape(
    registry: CollectorRegistry, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer one HTTP/1.x request on the metrics port, then close: `GET /metrics` or 404."""
    try:
        async with asyncio.timeout(_SCRAPE_READ_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if method in {b"GET", b"HEAD"} and target == METRICS_PATH.encode():
            body = generate_latest(registry)
            status, content_type = b"200 OK", f"{METRICS_MEDIA_TYPE}; charset=utf-8".encode()
        else:
            body, status, content_type = b"Not Found\n", b"404 Not Found", b"text/plain; charset=utf-8"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type
            + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            + (b"" if method == b"HEAD" else body)
        )  # fmt: skip
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass  # a slow, truncated or oversized request gets no answer: the connection is closed
    finally:
        writer.close()


@asynccontextmanager
async def metrics_port_server(app: Litestar) -> AsyncGenerator[None]:
    """Serve `/metrics` on `METRICS_PORT` (on `HOST`) for the application's lifetime, when it is set.

    A small asyncio server in each worker process, on the worker's own event loop (so the counters are read where
    they are bumped). The port is bound with `SO_REUSEPORT`, so every worker of `WORKERS > 1` listens on it and
    the kernel hands each scrape to one of them: a scrape describes one worker, as on the API port.
    """
    settings: Settings = app.state.settings
    if settings.metrics_port is None:
        yield
        return
    registry: CollectorRegistry = app.state.metrics_registry
    server = await asyncio.start_server(
        lambda reader, writer: _serve_scrape(registry, reader, writer),
        settings.host,
        settings.metrics_port,
        reuse_port=hasattr(socket, "SO_REUSEPORT"),
    )
    logger.info("metrics on http://%s:%d%s", settings.host, settings.metrics_port, METRICS_PATH)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
