"""The Makefile's own logic: plain `make help` into pipes, the Compose pre-check, finding uv, `make clean-data`.

Each test runs the real Makefile with a PATH of its own: a directory holding only the tools the recipe needs
(links to the real ones) and, where a test needs one, a fake `docker` or `uv` script. So no test depends on
what this machine has installed, and none starts a container.
"""

from __future__ import annotations

import os
import pty
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import ROOT

MAKE = shutil.which("make") or "make"  # the project needs make anyway: no skip without it
TOOLS = ("grep", "awk", "head", "tail", "rm", "dirname")


def bin_dir(tmp_path: Path, scripts: dict[str, str] | None = None) -> Path:
    """A directory for PATH with the tools recipes use, plus the given shell scripts."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real is not None, tool
        (directory / tool).symlink_to(real)
    for name, body in (scripts or {}).items():
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def make(
    *args: str, path: Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": str(path), "HOME": str(path.parent / "home"), **(env or {})}
    return subprocess.run(
        [MAKE, "--no-print-directory", "-f", str(ROOT / "Makefile"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_into_a_pipe_has_no_colour_codes(tmp_path: Path) -> None:
    result = make("help", path=bin_dir(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"help", "install", "run", "test", "check", "up", "ps", "logs", "down", "clean-data"} <= set(names)


def test_help_on_a_terminal_is_coloured(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    with os.fdopen(controller, "rb") as output:
        process = subprocess.run(
            [MAKE, "--no-print-directory", "-f", str(ROOT / "Makefile"), "help"],
            env={"PATH": str(bin_dir(tmp_path))},
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        text = output.read1(65536).decode()
    assert process.returncode == 0, process.stderr
    assert "\x1b[36mhelp" in text


FAKE_DOCKER = """
echo "docker $*" >> "$(dirname "$0")/calls"
case "$1 $2" in
  "compose version") {compose_version} ;;
  "info --format") {info} ;;
esac
"""
NO_PLUGIN = 'echo "docker: unknown command: docker compose" >&2; exit 1'
DAEMON_DOWN = (
    'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; '
    "exit 1"
)


@pytest.mark.parametrize("target", ["up", "ps", "logs", "down"])
def test_without_docker_the_compose_targets_say_what_is_missing(tmp_path: Path, target: str) -> None:
    result = make(target, path=bin_dir(tmp_path))
    assert result.returncode != 0
    assert f"make {target}: `docker` is not on PATH" in result.stderr
    assert "https://docs.docker.com/engine/install/" in result.stderr


@pytest.mark.parametrize("target", ["up", "ps", "logs", "down"])
def test_without_the_compose_plugin_the_targets_say_how_to_get_it(tmp_path: Path, target: str) -> None:
    path = bin_dir(tmp_path, {"docker": FAKE_DOCKER.format(compose_version=NO_PLUGIN, info="exit 0")})
    result = make(target, path=path)
    assert result.returncode != 0
    assert f"make {target}: this docker has no Compose plugin" in result.stderr
    assert "docker-compose-plugin" in result.stderr
    assert f"make {target} COMPOSE=docker-compose" in result.stderr
    assert "unknown flag" not in result.stderr
    calls = (path / "calls").read_text().splitlines()
    assert calls == ["docker compose version"]  # nothing ran past the check


def test_a_missing_standalone_compose_is_named(tmp_path: Path) -> None:
    path = bin_dir(tmp_path, {"docker": FAKE_DOCKER.format(compose_version="exit 0", info="exit 0")})
    result = make("ps", "COMPOSE=docker-compose", path=path)
    assert result.returncode != 0
    assert "make ps: `docker-compose` is not on PATH" in result.stderr


def test_without_an_engine_the_targets_say_so(tmp_path: Path) -> None:
    path = bin_dir(tmp_path, {"docker": FAKE_DOCKER.format(compose_version="exit 0", info=DAEMON_DOWN)})
    result = make("up", path=path)
    assert result.returncode != 0
    assert "make up: no Docker engine answers: Cannot connect to the Docker daemon" in result.stderr
    assert "DOCKER_HOST" in result.stderr
    assert "docker compose up" not in (path / "calls").read_text()


def test_with_compose_and_an_engine_the_target_runs_compose(tmp_path: Path) -> None:
    path = bin_dir(tmp_path, {"docker": FAKE_DOCKER.format(compose_version="exit 0", info="exit 0")})
    result = make("down", "ARGS=--volumes", path=path)
    assert result.returncode == 0, result.stderr
    assert (path / "calls").read_text().splitlines()[-1] == "docker compose down --volumes"


def test_uv_is_found_through_the_python_package_when_it_is_not_on_path(tmp_path: Path) -> None:
    """`pip install --user uv` said "already satisfied" for a uv elsewhere: no `uv` on PATH, no ~/.local/bin/uv."""
    path = bin_dir(tmp_path)
    uv_bin = tmp_path / "elsewhere" / "bin" / "uv"
    uv_bin.parent.mkdir(parents=True)
    uv_bin.write_text(f'#!/bin/sh\necho "uv $*" >> {tmp_path}/uv-calls\n')
    uv_bin.chmod(0o755)
    package = tmp_path / "site" / "uv"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"def find_uv_bin():\n    return {str(uv_bin)!r}\n")
    env = {"PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "site")}
    result = make("test", "PYTEST_ARGS=-q", path=path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "uv-calls").read_text().splitlines() == ["uv sync --frozen --quiet", "uv run --frozen pytest -q"]
    assert not (tmp_path / "home" / ".local").exists()  # pip was not asked


def test_clean_data_deletes_the_local_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "users.db").write_bytes(b"SQLite format 3\x00")
    result = make("clean-data", path=bin_dir(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not data.exists()
