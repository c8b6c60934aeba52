from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings, redact_url


def test_defaults_without_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({}, env_file=tmp_path / "missing")
    assert settings == Settings()
    assert settings.redis_url is None
    assert settings.sqlite_path == "data/users.db"


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://:s3cret@127.0.0.1:6379/2",
            "DATABASE_URL": "sqlite:////tmp/x.db",
            "CACHE_TTL_SECONDS": "12.5",
            "LOG_LEVEL": "debug",
            "PORT": "9000",
            "SEED_SAMPLE_USERS": "false",
        },
        env_file=None,
    )
    assert settings.redis_url == "redis://:s3cret@127.0.0.1:6379/2"
    assert settings.sqlite_path == "/tmp/x.db"
    assert settings.cache_ttl_seconds == 12.5
    assert settings.log_level == "DEBUG"
    assert settings.port == 9000
    assert settings.seed_sample_users is False


def test_empty_redis_url_means_memory() -> None:
    assert Settings.from_env({"REDIS_URL": ""}, env_file=None).redis_url is None


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nPORT=7000\nexport HOST='0.0.0.0'\nLOG_LEVEL=WARNING\n")
    settings = Settings.from_env({"LOG_LEVEL": "ERROR"}, env_file=env_file)
    assert (settings.port, settings.host, settings.log_level) == (7000, "0.0.0.0", "ERROR")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("CACHE_TTL_SECONDS", "0"),
        ("CACHE_TTL_SECONDS", "-3"),
        ("CACHE_TIMEOUT_MS", "1.5x"),
        ("LOG_LEVEL", "LOUD"),
        ("REDIS_URL", "http://:pw@example.invalid"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("CACHE_PREFIX", "has space"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value}, env_file=None)
    message = str(info.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message
    assert "pw" not in message


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("postgresql://app:s3cret@db/users", "postgresql://app:***@db/users"),
        ("redis://host:6379", "redis://host:6379"),
        ("postgresql://app@db/users", "postgresql://app@db/users"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_describe_never_shows_passwords() -> None:
    settings = Settings(redis_url="redis://:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in settings.describe()


def test_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "PORT" in result.stderr
