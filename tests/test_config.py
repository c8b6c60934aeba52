from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from app.config import ConfigError, Settings, redact_url
from app.usage import TABLE_END, TABLE_START, settings_docs, settings_table


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


ROOT = Path(__file__).parent.parent


def run_app(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` in `cwd` (so its `.env`, if any, is read) with only `env` set."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_every_setting_has_a_docstring() -> None:
    """The docstrings are the documentation: `--help` and the README table are made from them."""
    undocumented = [doc.variable for doc in settings_docs() if not doc.doc]
    assert undocumented == []


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_setting_with_its_default_and_starts_nothing(tmp_path: Path, flag: str) -> None:
    result = run_app(flag, cwd=tmp_path, env={"PORT": "not-a-port"})  # a bad setting does not matter to --help
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("usage: python -m app")
    for name, field in zip(Settings.__struct_fields__, msgspec.structs.fields(Settings), strict=True):
        [line] = [line for line in lines if line.split()[:1] == [name.upper()]]
        default = "unset" if field.default is None else str(field.default).lower().removesuffix(".0")
        assert line.split()[1].lower() == default, line
    assert "check-config" in result.stdout


def test_check_config_prints_the_effective_settings_with_passwords_redacted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=7001\nCACHE_TTL_SECONDS=12.5\n")
    env = {"REDIS_URL": "redis://:s3cret@127.0.0.1:6379/0", "DATABASE_URL": "postgresql://app:s3cret@db/users"}
    result = run_app("check-config", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(Settings.__struct_fields__)
    assert "PORT=7001" in lines
    assert "CACHE_TTL_SECONDS=12.5" in lines
    assert "REDIS_URL=redis://:***@127.0.0.1:6379/0" in lines
    assert "DATABASE_URL=postgresql://app:***@db/users" in lines
    assert "s3cret" not in result.stdout + result.stderr


def test_check_config_exits_2_with_the_one_line_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CACHE_PREFIX=has space\n")
    result = run_app("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("configuration error: CACHE_PREFIX:")


def test_an_unknown_argument_is_an_error_not_a_server(tmp_path: Path) -> None:
    result = run_app("--port", "9000", cwd=tmp_path)
    assert result.returncode == 2
    assert "--help" in result.stderr


def test_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(TABLE_START), readme.index(TABLE_END) + len(TABLE_END)
    assert readme[start:end] == settings_table(), "README.md's settings table is out of date: run `make readme`"


def test_readme_quotes_the_configuration_error_the_app_prints(tmp_path: Path) -> None:
    result = run_app("check-config", cwd=tmp_path, env={"PORT": "eighty"})
    assert result.returncode == 2
    quoted = f"``{result.stderr.strip()} ``"  # Markdown code with backticks inside
    assert quoted in " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
