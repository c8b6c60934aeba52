"""GET /metrics: cache counters read at scrape time, breaker, latency, HTTP counters, one registry per app."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Message, Receive, Scope, Send
from prometheus_client.parser import text_string_to_metric_families

from app.cache import CacheStats, CircuitBreakerBackend, CoalescingBackend, MemoryBackend
from app.cache.testing import FaultyBackend
from app.config import Settings
from app.metrics import UNMATCHED_ROUTE, HttpMetrics
from app.middleware import RequestMiddleware
from app.server import create_app
from tests.asgi import concurrent_client

Client = AsyncTestClient[Litestar]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

USER_ROUTE = "/users/{user_id}"


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels), and the type of each metric family."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape(client: Client) -> tuple[Samples, dict[str, str]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


@pytest.mark.parametrize(
    ("path", "status", "repeated"), [("/users/1", 200, "hit"), ("/users/404", 404, "negative_hit")]
)
async def test_cache_lookups_loads_and_every_stats_field(
    client: Client, app: Litestar, path: str, status: int, repeated: str
) -> None:
    for _ in range(3):
        assert (await client.get(path)).status_code == status
    samples, types = await scrape(client)
    # The first request misses and loads; the next two find what it cached (the user, or its absence).
    for result, expected in ({"miss": 1, "hit": 0, "negative_hit": 0} | {repeated: 2}).items():
        assert value(samples, "cache_lookups_total", cache="user", tier="remote", result=result) == expected, result
    assert value(samples, "cache_lookups_total", cache="user", tier="near", result="hit") == 0
    assert value(samples, "cache_loads_total", cache="user") == 1
    assert value(samples, "cache_errors_total", cache="user") == 0
    assert types["cache_lookups"] == "counter"
    # Every other CacheStats field is a counter of its own, with the value the cache holds.
    stats = app.state.cache_manager.stats()["user"]
    for field in CacheStats.__struct_fields__:
        if field not in {"hits", "misses", "negative_hits", "near_hits", "near_misses"}:
            assert types[f"cache_{field}"] == "counter", field
            assert value(samples, f"cache_{field}_total", cache="user") == getattr(stats, field), field


async def test_http_requests_by_route_template_method_and_status(client: Client) -> None:
    for path in ["/users/1", "/users/2", "/users/404", "/nope", "/users/abc", "/metrics"]:
        await client.get(path)
    await client.put("/users/1")
    samples, types = await scrape(client)
    requests = {
        (dict(labels)["method"], dict(labels)["route"], dict(labels)["status"]): count
        for (name, labels), count in samples.items()
        if name == "http_requests_total"
    }
    assert requests == {
        ("GET", USER_ROUTE, "200"): 2,
        ("GET", USER_ROUTE, "404"): 1,
        ("GET", UNMATCHED_ROUTE, "404"): 1,
        ("GET", UNMATCHED_ROUTE, "400"): 1,  # /users/abc: the router rejects it before any route matches
        ("PUT", UNMATCHED_ROUTE, "405"): 1,
    }  # and /metrics itself is not counted
    assert types["http_request_duration_seconds"] == "histogram"
    assert value(samples, "http_request_duration_seconds_count", method="GET", route=USER_ROUTE) == 3
    assert value(samples, "http_request_duration_seconds_bucket", method="GET", route=USER_ROUTE, le="+Inf") == 3
    total = value(samples, "http_request_duration_seconds_sum", method="GET", route=USER_ROUTE)
    assert total is not None
    assert 0 < total < 10
    assert value(samples, "http_requests_in_progress") == 1  # the scrape itself


async def test_breaker_state_and_backend_latency(client: Client, app: Litestar) -> None:
    assert (await client.get("/users/1")).status_code == 200
    samples, types = await scrape(client)
    if app.state.settings.redis_url is None:
        assert "cache_breaker_state" not in types
        assert "cache_operation_duration_seconds" not in types
        return
    assert types["cache_breaker_state"] == "gauge"
    assert value(samples, "cache_breaker_state", backend="redis", state="closed") == 1
    assert value(samples, "cache_breaker_state", backend="redis", state="open") == 0
    assert value(samples, "cache_breaker_state", backend="redis", state="half_open") == 0
    assert types["cache_operation_duration_seconds"] == "histogram"
    gets = value(samples, "cache_operation_duration_seconds_count", backend="redis", operation="get")
    assert gets is not None
    assert gets >= 1
    labels = {"backend": "redis", "operation": "get"}
    assert value(samples, "cache_operation_duration_seconds_bucket", **labels, le="+Inf") == gets
    assert value(samples, "cache_operation_duration_seconds_bucket", **labels, le="1.0") == gets  # timeout 1 s
    seconds = value(samples, "cache_operation_duration_seconds_sum", **labels)
    assert seconds is not None
    assert 0 < seconds < gets


async def test_open_breaker_is_reported(sqlite_path: str) -> None:
    faulty = FaultyBackend(MemoryBackend(), failing=True)
    backend = CircuitBreakerBackend(faulty, failure_threshold=1, reset_timeout=60)
    app = create_app(Settings(database_url=f"sqlite:///{sqlite_path}"), cache_backend=backend)
    async with AsyncTestClient(app) as client:
        assert (await client.get("/users/1")).status_code == 200  # from the database
        samples, _ = await scrape(client)
    assert value(samples, "cache_breaker_state", backend="memory", state="open") == 1
    assert value(samples, "cache_breaker_state", backend="memory", state="closed") == 0
    errors = value(samples, "cache_errors_total", cache="user")
    assert errors is not None
    assert errors >= 1


async def test_coalesced_reads_are_counted(sqlite_path: str) -> None:
    counting = FaultyBackend(MemoryBackend())
    app = create_app(Settings(database_url=f"sqlite:///{sqlite_path}"), cache_backend=CoalescingBackend(counting))
    async with concurrent_client(app) as client:
        assert (await client.get("/users/1")).status_code == 200  # a miss: loads user 1 into the cache
        reads_before = counting.calls["get_many"]
        responses = await asyncio.gather(*(client.get("/users/1") for _ in range(20)))
        assert [r.status_code for r in responses] == [200] * 20
        reads = counting.calls["get_many"] - reads_before
        samples, types = parse((await client.get("/metrics")).text)
    assert "cache_batched" not in types  # no per-cache counter that nothing bumps
    assert types["cache_batched_reads"] == types["cache_backend_reads"] == "counter"
    sent = value(samples, "cache_backend_reads_total", backend="memory")
    batched = value(samples, "cache_batched_reads_total", backend="memory")
    assert sent == counting.calls["get_many"]
    assert batched is not None
    assert batched > 0
    # Twenty cache hits: every one of them either sent a backend read or rode along with one.
    assert reads + batched == 20


async def test_apps_do_not_share_metrics(tmp_path: Path) -> None:
    first = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'first.db'}"))
    second = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'second.db'}"))
    assert first.state.metrics_registry is not second.state.metrics_registry
    async with AsyncTestClient(first) as one, AsyncTestClient(second) as two:
        for _ in range(3):
            await one.get("/users/1")
        await two.get("/users/2")
        first_samples, _ = await scrape(one)
        second_samples, _ = await scrape(two)
    route = {"method": "GET", "route": USER_ROUTE, "status": "200"}
    assert value(first_samples, "http_requests_total", **route) == 3
    assert value(second_samples, "http_requests_total", **route) == 1
    assert value(first_samples, "cache_lookups_total", cache="user", tier="remote", result="hit") == 2
    assert value(second_samples, "cache_lookups_total", cache="user", tier="remote", result="hit") == 0
    # Nothing went to prometheus_client's process-wide registry.
    assert prometheus_client.REGISTRY.get_sample_value("http_requests_total", route) is None


async def test_process_metrics_and_no_cache_metrics_before_start_up(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'users.db'}"))
    text = prometheus_client.generate_latest(app.state.metrics_registry).decode()
    _, types = parse(text)
    assert "cache_lookups" not in types  # no cache manager until the lifespan runs
    assert "http_requests" in types
    assert "python_info" in types


async def test_middleware_counts_a_crash_as_500_and_odd_methods_as_other() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    metrics = HttpMetrics()
    middleware = RequestMiddleware(crash, metrics)
    scope = {"type": "http", "method": "BREW", "path": "/pot", "headers": []}
    with pytest.raises(RuntimeError):
        await middleware(scope, receive, send)  # type: ignore[arg-type]
    assert {key: series.count for key, series in metrics.requests.items()} == {("other", UNMATCHED_ROUTE, 500): 1}
    assert metrics.in_progress == 0
