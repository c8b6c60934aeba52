"""Item 15: with METRICS_PORT set, /metrics is served on its own port only, never on the API port."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.server import create_app
from tests.asgi import concurrent_client
from tests.deploy.files import ROOT
from tests.deploy.test_smoke import Service
from tests.servers import free_port


def stop_gracefully(service: Service) -> None:
    """SIGTERM, so the server stops its worker processes too (SIGKILL would orphan them), then make sure."""
    service.process.send_signal(signal.SIGTERM)
    try:
        service.process.wait(timeout=30)
    finally:
        service.stop()


async def test_metrics_move_to_their_own_port(sqlite_path: str) -> None:
    port = free_port()
    app = create_app(Settings(database_url=f"sqlite:///{sqlite_path}", metrics_port=port))
    async with concurrent_client(app) as client:
        assert (await client.get("/users/1")).status_code == 200
        assert (await client.get("/metrics")).status_code == 404  # not on the API port
        assert "/metrics" not in (await client.get("/schema/openapi.json")).json()["paths"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
            scrape = await scraper.get("/metrics")
            assert scrape.status_code == 200
            assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'http_requests_total{method="GET",route="/users/{user_id}",status="200"} 1.0' in scrape.text
            assert "cache_lookups_total" in scrape.text
            assert (await scraper.get("/users/1")).status_code == 404  # and nothing but metrics there
    with pytest.raises(httpx.ConnectError):  # closed with the application
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


async def test_a_silent_scraper_is_disconnected(sqlite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.metrics._SCRAPE_READ_TIMEOUT", 0.2)
    port = free_port()
    app = create_app(Settings(database_url=f"sqlite:///{sqlite_path}", metrics_port=port))
    async with concurrent_client(app):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metr")
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed, without an answer
        writer.close()


def test_without_metrics_port_metrics_stay_on_the_api_port(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1", "PORT": str(free_port())}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'users.db'}"
    service = Service(env, tmp_path)
    try:
        service.wait_ready()
        assert httpx.get(f"{service.base_url}/metrics", timeout=5).status_code == 200
    finally:
        service.stop()


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_python_m_app_with_two_workers_serves_metrics_on_the_metrics_port(tmp_path: Path, server: str) -> None:
    metrics_port = free_port()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1", "PORT": str(free_port())}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}", "METRICS_PORT": str(metrics_port)}
    env |= {"WORKERS": "2", "SERVER": server}
    service = Service(env, tmp_path)
    try:
        service.wait_ready()
        assert httpx.get(f"{service.base_url}/metrics", timeout=5).status_code == 404
        for _ in range(4):  # each scrape reaches one of the workers; every one answers
            scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            assert scrape.status_code == 200
            assert "process_resident_memory_bytes" in scrape.text
    finally:
        stop_gracefully(service)
    assert service.logs.count(f"metrics on http://127.0.0.1:{metrics_port}/metrics") == 2, service.logs
