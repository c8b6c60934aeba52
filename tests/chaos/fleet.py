"""The system under test: N `python -m app` instances, each reaching a throw-away Redis through its own proxy.

Everything listens on 127.0.0.1 only. Redis has a password; PostgreSQL is given by URL (the harness starts a
throw-away `PostgresServer`, the pytest module uses the suite's `postgres_url`). Each instance runs with a
minimal environment in a directory of its own (no `.env`), its output in `instance-<name>.log` there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.chaos.proxy import Proxy, ProxyThread
from tests.servers import HOW_TO_PROVIDE_REDIS, RedisServer, free_port

__all__ = ("Fleet", "Instance", "InstanceFailedError")

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
INSTANCE_NAMES = "ABCDEFGH"


class InstanceFailedError(RuntimeError):
    """An instance exited or did not become ready."""


class Instance:
    """One `python -m app` child process, reaching Redis through `proxy`."""

    __slots__ = ("_log", "base_url", "env", "log_path", "name", "port", "process", "proxy")

    def __init__(self, name: str, proxy: Proxy, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.proxy = proxy
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = env | {"PORT": str(self.port)}
        self.log_path = workdir / f"instance-{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"], env=self.env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise InstanceFailedError(f"instance {self.name} exited with {self.process.returncode}:\n{self.logs}")
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise InstanceFailedError(f"instance {self.name} not ready after {START_TIMEOUT} s:\n{self.logs}")
            time.sleep(0.1)

    @property
    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class Fleet:
    """Redis (with a password), one proxy per instance, and the instances; `close()` stops all of it."""

    __slots__ = ("database_url", "env", "instances", "near", "proxies", "redis", "workdir")

    def __init__(
        self, database_url: str, *, instances: int = 2, near: bool = False, env: dict[str, str] | None = None
    ) -> None:
        if not shutil.which("redis-server"):
            raise RuntimeError(HOW_TO_PROVIDE_REDIS)
        self.database_url = database_url
        self.near = near
        self.env = env or {}
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.redis = RedisServer(password=secrets.token_hex(16), extra_args=("--dbfilename", "chaos.rdb"))
        self.proxies = ProxyThread()
        self.instances: list[Instance] = []
        self.redis.start()
        try:
            env = self._environment()
            for index in range(instances):
                proxy = self.proxies.new_proxy("127.0.0.1", self.redis.port)
                redis_url = f"redis://:{self.redis.password}@127.0.0.1:{proxy.port}/0"
                self.instances.append(
                    Instance(INSTANCE_NAMES[index], proxy, env | {"REDIS_URL": redis_url}, self.workdir)
                )
                if index == 0:  # the first one migrates and seeds the database; the others find it done
                    self.instances[0].wait_ready()
            for instance in self.instances[1:]:
                instance.wait_ready()
        except BaseException:
            self.close()
            raise

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "HOST": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "CACHE_NEAR_ENABLED": "true" if self.near else "false",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "WARNING",
            "WORKERS": "1",
        } | self.env

    # -- Redis faults ---------------------------------------------------------------------------------------

    @property
    def redis_pid(self) -> int:
        assert self.redis.process is not None
        return self.redis.process.pid

    def redis_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis.port, password=self.redis.password, socket_timeout=5)

    def kill_redis(self) -> None:
        """SIGKILL: nothing is saved."""
        self.redis.stop()

    def start_redis(self, rdb: Path | None = None) -> None:
        """Start Redis again on the same port: from `rdb` if given, else empty."""
        target = self.redis.workdir / "chaos.rdb"
        target.unlink(missing_ok=True)
        if rdb is not None:
            shutil.copyfile(rdb, target)
        self.redis.start()

    def stall_redis(self) -> None:
        os.kill(self.redis_pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self.redis_pid, signal.SIGCONT)

    def snapshot_redis(self) -> Path:
        """`SAVE` now and keep a copy of the RDB file."""
        client = self.redis_client()
        try:
            client.save()
        finally:
            client.close()
        copy = self.workdir / f"snapshot-{time.monotonic_ns()}.rdb"
        shutil.copyfile(self.redis.workdir / "chaos.rdb", copy)
        return copy

    def kill_pubsub_clients(self) -> int:
        """`CLIENT KILL TYPE pubsub`: every subscription connection is dropped (the instances reconnect)."""
        client = self.redis_client()
        try:
            return int(client.client_kill_filter(_type="pubsub"))  # pyright: ignore[reportArgumentType]
        finally:
            client.close()

    def close(self) -> None:
        for instance in self.instances:
            instance.stop()
        if self.redis.process is not None:
            os.kill(self.redis.process.pid, signal.SIGCONT)  # a stalled Redis would not die of SIGKILL before it
        self.redis.close()
        for instance in self.instances:
            self.proxies.run(instance.proxy.close())
        self.proxies.stop()

    def remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
