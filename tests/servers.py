"""Real servers for tests: throw-away redis-server processes, or whatever the environment provides."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

HOW_TO_PROVIDE_REDIS = (
    "Redis tests need a server: install redis-server (apt-get install redis-server), "
    "or run a Docker engine for testcontainers, or set REDIS_URL to a server the tests may flush."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=0.5)
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    finally:
        client.close()


@dataclass
class RedisServer:
    """A `redis-server` child process on a free loopback port, which tests may stop and start again."""

    port: int = field(default_factory=free_port)
    password: str | None = None
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-test-")))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(HOW_TO_PROVIDE_REDIS)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen([*args, *self.extra_args])
        wait_for_redis(self.url)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def docker_available() -> bool:
    """Whether a Docker engine answers, so testcontainers can start servers."""
    try:
        import docker  # pyright: ignore[reportMissingTypeStubs]

        client = docker.from_env()  # pyright: ignore[reportUnknownMemberType]
    except Exception:
        return False
    try:
        client.ping()  # pyright: ignore[reportUnknownMemberType]
    except Exception:
        return False
    finally:
        client.close()  # pyright: ignore[reportUnknownMemberType]
    return True
