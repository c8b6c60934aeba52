"""The system under test: N `python -m app` instances, each reaching a throw-away Redis through its own proxy.

Or, with `topology="cluster"` or `"sentinel"`, a throw-away 6-node Redis Cluster or Sentinel setup (1 master, 1 replica,
3 sentinels) that every instance reaches directly (a cluster redirects clients to the addresses its nodes announce;
a proxy in front would only be bypassed). Everything listens on 127.0.0.1 only. The standalone Redis has a password;
PostgreSQL is given by URL (the harness starts a
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
from tests.servers import HOW_TO_PROVIDE_REDIS, RedisClusterServer, RedisServer, SentinelServer, free_port

__all__ = ("TOPOLOGIES", "Fleet", "Instance", "InstanceFailedError")

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
INSTANCE_NAMES = "ABCDEFGH"
TOPOLOGIES = ("standalone", "cluster", "sentinel")


class InstanceFailedError(RuntimeError):
    """An instance exited or did not become ready."""


class Instance:
    """One `python -m app` child process, reaching Redis through `proxy` (standalone) or directly (`None`)."""

    __slots__ = ("_log", "base_url", "env", "log_path", "name", "port", "process", "proxy")

    def __init__(self, name: str, proxy: Proxy | None, env: dict[str, str], workdir: Path) -> None:
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
    """Redis (standalone with a password, a cluster or Sentinel), one proxy per instance on a standalone Redis, and
    the instances; `close()` stops all of it."""

    __slots__ = ("cluster", "database_url", "env", "instances", "near", "proxies", "redis", "sentinel", "workdir")

    def __init__(
        self,
        database_url: str,
        *,
        instances: int = 2,
        near: bool = False,
        env: dict[str, str] | None = None,
        topology: str = "standalone",
    ) -> None:
        if not shutil.which("redis-server"):
            raise RuntimeError(HOW_TO_PROVIDE_REDIS)
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology: one of {TOPOLOGIES}, got {topology!r}")
        self.database_url = database_url
        self.near = near
        self.env = env or {}
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.redis = RedisServer(password=secrets.token_hex(16), extra_args=("--dbfilename", "chaos.rdb"))
        self.cluster = RedisClusterServer() if topology == "cluster" else None
        self.sentinel = SentinelServer() if topology == "sentinel" else None
        self.proxies = ProxyThread()
        self.instances: list[Instance] = []
        try:
            env = self._environment() | self._start_redis()
            for index in range(instances):
                proxy = None
                if self.cluster is None and self.sentinel is None:
                    proxy = self.proxies.new_proxy("127.0.0.1", self.redis.port)
                    env["REDIS_URL"] = f"redis://:{self.redis.password}@127.0.0.1:{proxy.port}/0"
                self.instances.append(Instance(INSTANCE_NAMES[index], proxy, env, self.workdir))
                if index == 0:  # the first one migrates and seeds the database; the others find it done
                    self.instances[0].wait_ready()
            for instance in self.instances[1:]:
                instance.wait_ready()
        except BaseException:
            self.close()
            raise

    def _start_redis(self) -> dict[str, str]:
        """Start the servers; the instances' settings that name them (standalone: each instance's own proxy)."""
        if self.cluster is not None:
            self.cluster.start()
            return {"REDIS_URL": self.cluster.url, "REDIS_CLUSTER": "true"}
        if self.sentinel is not None:
            self.sentinel.start()
            return {"REDIS_URL": self.sentinel.url}
        self.redis.start()
        return {}

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

    # -- failovers (cluster, Sentinel) -----------------------------------------------------------------------

    def master_and_replica(self, key: str) -> tuple[RedisServer, RedisServer]:
        """The master that holds `key` (a cluster's owner of its slot, or the Sentinel's master), and its replica."""
        if self.cluster is not None:
            master = self.cluster.node_for(key)
            for node in self.cluster.nodes:
                if node.process is not None and node is not master and _master_port(node) == master.port:
                    return master, node
            raise RuntimeError(f"no replica of 127.0.0.1:{master.port}")
        assert self.sentinel is not None
        assert self.sentinel.master is not None
        assert self.sentinel.replica is not None
        return self.sentinel.master, self.sentinel.replica

    def cut_off(self, master: RedisServer, replica: RedisServer) -> None:
        """Stop `replica` (SIGSTOP) and close its link on the master's side: what the master takes from now on never
        reaches it (a stopped replica alone would still read what the kernel had buffered for it)."""
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        with redis.Redis(port=master.port, socket_timeout=5) as client:
            client.client_kill_filter(_type="replica")  # pyright: ignore[reportArgumentType]

    def kill_and_resume(self, master: RedisServer, replica: RedisServer) -> None:
        """SIGKILL `master`, then resume the replica `cut_off` stopped."""
        try:
            master.stop()
        finally:
            assert replica.process is not None
            os.kill(replica.process.pid, signal.SIGCONT)

    def wait_promoted(self, replica: RedisServer, timeout: float = 30.0) -> None:
        """Until `replica` is a master (the Sentinel's: after `SENTINEL FAILOVER`) and the cluster is whole again."""
        if self.sentinel is not None:
            self.sentinel.failover(timeout)
        deadline = time.monotonic() + timeout
        while _master_port(replica) is not None or (
            self.sentinel is not None and self.sentinel.current_master_port() != replica.port
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"127.0.0.1:{replica.port} was not promoted within {timeout} s")
            time.sleep(0.05)
        if self.cluster is not None:
            self.cluster.wait_ok(timeout)

    def close(self) -> None:
        for instance in self.instances:
            instance.stop()
        for server in self._redis_servers():
            if server.process is not None:  # a stalled Redis would not die of SIGKILL before it
                os.kill(server.process.pid, signal.SIGCONT)
        for owner in (self.redis, self.cluster, self.sentinel):
            if owner is not None:
                owner.close()
        for instance in self.instances:
            if instance.proxy is not None:
                self.proxies.run(instance.proxy.close())
        self.proxies.stop()

    def _redis_servers(self) -> list[RedisServer]:
        if self.cluster is not None:
            return self.cluster.nodes
        if self.sentinel is not None:
            return [server for server in (self.sentinel.master, self.sentinel.replica) if server is not None]
        return [self.redis]

    def remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _master_port(server: RedisServer) -> int | None:
    """The port of the master `server` replicates, or `None` when it is a master itself."""
    with redis.Redis(port=server.port, socket_timeout=0.5) as client:
        info = client.info("replication")
    return int(info["master_port"]) if info["role"] == "slave" else None  # pyright: ignore[reportIndexIssue, reportArgumentType]
