"""Start the service the way the container image does and check it end to end.

No Docker engine runs here, so the image's command (`python -m app`) runs on the host, with the environment the
Dockerfile sets (and, for the "compose" stack, what compose.yaml adds for the app service), against a
password-protected throw-away redis-server and each database. Only HOST and PORT (loopback, a free port) and the
two URLs (the local servers instead of the compose services) differ from the container.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.files import ROOT, compose_environment, dockerfile_env, dockerfile_exec_form
from tests.servers import HOW_TO_PROVIDE_REDIS, RedisServer, free_port

ADA_UUID = "550e8400-e29b-41d4-a716-446655440001"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class Service:
    """`python -m app` as a child process, its output in a file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = int(env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "service.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def wait_ready(self) -> httpx.Response:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the service exited with {self.process.returncode} while starting:\n{self.logs}")
            try:
                response = httpx.get(f"{self.base_url}/health/ready", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the service was not ready after {START_TIMEOUT} s:\n{self.logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def redis_password() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def protected_redis(redis_password: str) -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.fail(HOW_TO_PROVIDE_REDIS + " The smoke test needs the redis-server binary.")
    server = RedisServer(password=redis_password).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def smoke_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'users.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["image", "compose"])
def service_env(
    request: pytest.FixtureRequest, protected_redis: RedisServer, smoke_database_url: str
) -> dict[str, str]:
    """The container's environment: the image's ENV, plus compose.yaml's for the app service on "compose"."""
    env = dockerfile_env()
    if request.param == "compose":
        compose_env = compose_environment("app")
        assert {"REDIS_URL", "DATABASE_URL"} <= compose_env.keys()
        env |= compose_env
    # Nothing from the test run's own environment leaks in but PATH (and PYTHONPATH, as WORKDIR /app would).
    return env | {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "REDIS_URL": protected_redis.url,
        "DATABASE_URL": smoke_database_url,
    }


@pytest.fixture(params=["uvicorn", "granian"])
def server(request: pytest.FixtureRequest) -> str:
    """`SERVER`: each HTTP server `python -m app` can run."""
    return request.param


@pytest.fixture
def service(service_env: dict[str, str], server: str, tmp_path: Path) -> Iterator[Service]:
    # The image runs exactly this command (through tini): the test runs the same module with the venv's python.
    assert dockerfile_exec_form("CMD") == ["python", "-m", "app"]
    assert dockerfile_exec_form("ENTRYPOINT")[0].endswith("tini")
    workdir = tmp_path / "workdir"  # no .env here: the service sees only service_env
    workdir.mkdir()
    service = Service(service_env | {"SERVER": server}, workdir)
    try:
        yield service
    finally:
        service.stop()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[bytes]:
    """The Dockerfile's HEALTHCHECK command, with this python (the image's is on its PATH)."""
    command = dockerfile_exec_form("HEALTHCHECK")
    assert command[0] == "python"
    env = {"PATH": os.environ["PATH"], "PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=10, check=False)


def test_serves_as_the_image_does_and_stops_cleanly_on_sigterm(
    service: Service, service_env: dict[str, str], server: str, redis_password: str
) -> None:
    ready = service.wait_ready()
    body = ready.json()
    assert body["status"] == "ready"
    assert body["database"]["status"] == "ok"
    assert body["cache"]["status"] == "ok", body  # the password in REDIS_URL got through

    by_id = httpx.get(f"{service.base_url}/users/1", timeout=5)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["id"] == 1
    assert by_id.json()["uuid"] == ADA_UUID
    generated = by_id.headers["x-request-id"]
    assert len(generated) == 32
    assert int(generated, 16) >= 0

    by_uuid = httpx.get(f"{service.base_url}/users/uuid/{ADA_UUID}", headers={"X-Request-ID": "smoke-1"}, timeout=5)
    assert by_uuid.status_code == 200, by_uuid.text
    assert by_uuid.json() == by_id.json()
    assert by_uuid.headers["x-request-id"] == "smoke-1"

    healthy = run_healthcheck(service.port)
    assert healthy.returncode == 0, healthy.stderr.decode()

    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=STOP_TIMEOUT + 5) == 0, service.logs
    assert time.monotonic() - started < STOP_TIMEOUT

    logs = service.logs
    assert redis_password not in logs
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # LOG_FORMAT=json, as the image sets: every line is JSON
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    messages = [record["message"] for record in records]
    workers = int(service_env["WORKERS"])
    assert sum(message.startswith("ready: cache=redis://:***@") for message in messages) == workers, messages
    if server == "uvicorn":
        assert messages.count("Application shutdown complete.") == workers, messages
    else:
        assert sum(message.startswith("Stopped worker-") for message in messages) == workers, messages
        assert messages.count("Granian shutdown completed, see ya!") == 1, messages
    assert not [record for record in records if record["level"] in {"ERROR", "CRITICAL"}]


def test_healthcheck_fails_when_nothing_answers() -> None:
    assert run_healthcheck(free_port()).returncode != 0


def test_bad_setting_exits_with_status_2_and_one_line(tmp_path: Path) -> None:
    env = dockerfile_env() | {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: LOG_FORMAT: ")
    assert len(result.stderr.strip().splitlines()) == 1
