"""Child processes for the benchmarks: HTTP servers on free loopback ports (and the tests' throw-away redis-server)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.servers import RedisServer, free_port

__all__ = ("BenchError", "HttpServer", "RedisServer", "child_env", "free_port", "require_binary")


class BenchError(Exception):
    """The benchmark cannot run; the message says why (and how to fix it)."""


INSTALL_HINTS = {
    "wrk": "install it with `sudo apt-get install wrk` (Debian/Ubuntu), `brew install wrk` (macOS), "
    "or build it from https://github.com/wg/wrk",
    "redis-server": "install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis`",
}


def require_binary(name: str) -> str:
    """Return the path of `name` on PATH, or raise `BenchError` saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found on PATH: {INSTALL_HINTS.get(name, 'install it')}")
    return path


def _stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@dataclass
class HttpServer:
    """One HTTP server process (one worker, access log off), its output in `workdir/<name>.log`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.workdir,  # not the repository: a developer's .env must not change what is measured
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, path: str, timeout: float = 60.0) -> bytes:
        """Poll `path` until it answers 200; return the body."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2) as response:
                    if response.status == 200:
                        return response.read()
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not answer 200 on {path} within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


def child_env(extra: dict[str, str], pythonpath: Path) -> dict[str, str]:
    """The environment of a server: ours, minus every setting of the service, plus `extra`.

    Settings inherited from the caller's shell (a `REDIS_URL` pointing at the shared server, say) would
    silently change what a case measures, so they are dropped.
    """
    owned = ("REDIS_", "CACHE_", "DATABASE_", "SEED_", "LOG_", "HOST", "PORT", "WORKERS", "SERVER")
    env = {name: value for name, value in os.environ.items() if not name.startswith(owned)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
