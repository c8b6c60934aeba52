"""Item 13: no credential of a URL reaches a log line, a response or the settings' repr."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import ConfigError, Settings, redact_url
from tests.deploy.files import ROOT
from tests.deploy.test_smoke import Service
from tests.servers import HOW_TO_PROVIDE_REDIS, RedisServer, free_port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host/0", "redis://user:***@host/0"),
        ("redis://host:6379/0?password=s3cret", "redis://host:6379/0?password=***"),
        (
            "postgresql://u@host/db?sslmode=require&password=s3cret&sslpassword=s3cret&application_name=a",
            "postgresql://u@host/db?sslmode=require&password=***&sslpassword=***&application_name=a",
        ),
        (
            "redis://h/0?token=s3cret&api_key=s3cret&AUTH=s3cret&pwd=s3cret",
            "redis://h/0?token=***&api_key=***&AUTH=***&pwd=***",
        ),
        ("redis://h/0?client_secret=s3cret&pass=s3cret", "redis://h/0?client_secret=***&pass=***"),
        ("redis://h/0?pass%77ord=s3cret", "redis://h/0?pass%77ord=***"),
        ("postgresql://u:s3cret@[::1/db", "***"),
        ("sqlite:///data/users.db", "sqlite:///data/users.db"),
    ],
)
def test_redact_url_hides_every_credential(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3cret" not in redact_url(url)


def test_settings_repr_and_config_errors_hide_secrets() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://:s3cret1@h/0?password=s3cret2",
            "DATABASE_URL": "postgresql://u:s3cret3@h/db?password=s3cret4",
            "CACHE_SIGNING_KEY": "s3cret5s3cret5s3cret5",
        },
        env_file=None,
    )
    shown = repr(settings) + str(settings) + settings.describe()
    for n in range(1, 6):
        assert f"s3cret{n}" not in shown, shown
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": "http://:s3cret@h/0?token=s3cret"}, env_file=None)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CACHE_SIGNING_KEY": "short,s3cret-but-fine-length"}, env_file=None)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith("CACHE_SIGNING_KEY: ")


@pytest.fixture
def redis_password() -> str:
    return "S1" + secrets.token_hex(12)


@pytest.fixture
def protected_redis(redis_password: str) -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.fail(HOW_TO_PROVIDE_REDIS)
    server = RedisServer(password=redis_password).start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_passwords_in_query_parameters_authenticate_and_never_show(
    protected_redis: RedisServer, redis_password: str, postgres_url: str, log_format: str, tmp_path: Path
) -> None:
    database_password = "S2" + secrets.token_hex(12)
    separator = "&" if "?" in postgres_url else "?"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "DEBUG",  # the most lines there can be, access log included
        "REDIS_URL": f"redis://127.0.0.1:{protected_redis.port}/0?password={redis_password}",
        "DATABASE_URL": f"{postgres_url}{separator}password={database_password}",
    }
    service = Service(env, tmp_path)
    try:
        ready = service.wait_ready()
        assert ready.json()["cache"]["status"] == "ok", ready.text  # the password from the query authenticated
        bodies = [ready.text]
        for path in ("/users/1", "/metrics", "/health/live", "/schema/openapi.json"):
            bodies.append(httpx.get(service.base_url + path, timeout=5).text)
    finally:
        service.stop()
    logs = service.logs
    assert "ready: cache=redis://127.0.0.1" in logs
    assert "password=***" in logs
    for secret in (redis_password, database_password):
        assert secret not in logs
        assert all(secret not in body for body in bodies)
