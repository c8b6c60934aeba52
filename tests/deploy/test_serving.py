"""Production serving pieces: request ids (middleware + logging filter), the log formats, the new settings."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.config import ConfigError, Settings
from app.logs import JsonFormatter, RequestIdFilter, TextFormatter, logging_config, request_id_var
from app.metrics import HttpMetrics
from app.middleware import RequestMiddleware
from app.server import create_app

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'users.db'}"))
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of the test's own, whose handler has the filter and the JSON formatter, as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"tests.deploy.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_response_gets_a_fresh_request_id(client: AsyncTestClient[Litestar]) -> None:
    ids = [(await client.get(path)).headers["x-request-id"] for path in ("/users/1", "/users/1", "/health/live")]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids), ids
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    "incoming", ["abc", "550e8400-e29b-41d4-a716-446655440001", "Root=1-5759e988:bd862e3f.x_y/z+w==", "a" * 64]
)
async def test_a_sane_incoming_request_id_is_kept(client: AsyncTestClient[Litestar], incoming: str) -> None:
    response = await client.get("/users/1", headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == [incoming]


@pytest.mark.parametrize(
    "incoming", [b"", b"a" * 65, b"has space", b"-leading-dash", b'quote"d', b"back\\slash", b"tab\t", "é".encode()]
)
async def test_an_insane_incoming_request_id_is_replaced(client: AsyncTestClient[Litestar], incoming: bytes) -> None:
    response = await client.get("/users/1", headers={b"X-Request-ID": incoming})
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_error_responses_carry_the_request_id(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/users/11", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-404"


async def test_log_lines_carry_the_id_of_their_request(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        logger.info("handling %s", scope["path"])
        await asyncio.sleep(0.01)  # both requests are in flight together
        logger.info("done %s", scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=RequestMiddleware(endpoint, HttpMetrics()))  # pyright: ignore[reportArgumentType]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first, second = await asyncio.gather(
            http.get("/a", headers={"X-Request-ID": "req-a"}), http.get("/b", headers={"X-Request-ID": "req-b"})
        )
    logger.info("after the requests")

    assert first.headers["x-request-id"] == "req-a"
    assert first.headers["x-app"] == "1"  # the app's own headers are kept
    assert second.headers["x-request-id"] == "req-b"
    lines = records(stream)
    by_message = {line["message"]: line.get("request_id") for line in lines}
    assert by_message == {
        "handling /a": "req-a",
        "done /a": "req-a",
        "handling /b": "req-b",
        "done /b": "req-b",
        "after the requests": None,
    }
    assert request_id_var.get() == "-"


def test_json_lines(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    token = request_id_var.set("req-1")
    try:
        logger.warning("cache %s is %s", "user", "degraded")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        request_id_var.reset(token)
    warning, error = records(stream)
    assert warning["level"] == "WARNING"
    assert warning["logger"] == logger.name
    assert warning["message"] == "cache user is degraded"
    assert warning["request_id"] == "req-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", warning["time"])
    assert "exception" not in warning
    assert error["message"] == "failed"
    assert error["exception"].startswith("Traceback")
    assert "ValueError: boom" in error["exception"]


def test_text_lines() -> None:
    formatter = TextFormatter()
    record = logging.LogRecord("app.lifespan", logging.INFO, __file__, 1, "ready: %s", ("memory",), None)
    assert formatter.format(record).endswith(" INFO    app.lifespan [-] ready: memory")
    token = request_id_var.set("req-9")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert formatter.format(record).endswith(" INFO    app.lifespan [req-9] ready: memory")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_logging_config_routes_uvicorn_and_app_loggers_through_one_handler(log_format: Any) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(logging_config("WARNING", log_format))
        (handler,) = root.handlers
        assert root.level == logging.WARNING
        assert isinstance(handler.formatter, TextFormatter if log_format == "text" else JsonFormatter)
        assert any(isinstance(f, RequestIdFilter) for f in handler.filters)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            assert logging.getLogger(name).handlers == []
            assert logging.getLogger(name).propagate
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_workers_and_log_format_settings() -> None:
    settings = Settings.from_env({"WORKERS": "4", "LOG_FORMAT": "json"}, env_file=None)
    assert (settings.workers, settings.log_format) == (4, "json")
    assert (Settings().workers, Settings().log_format) == (1, "text")
    for name, value in [("WORKERS", "0"), ("WORKERS", "65"), ("WORKERS", "two"), ("LOG_FORMAT", "xml")]:
        with pytest.raises(ConfigError, match=rf"^{name}: "):
            Settings.from_env({name: value}, env_file=None)
