"""Real servers for tests: throw-away redis-server processes, or whatever the environment provides."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from collections.abc import Callable

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


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(HOW_TO_PROVIDE_REDIS)
    return binary


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class RedisClusterServer:
    """A 6-node Redis Cluster (3 masters, 3 replicas) of `redis-server` children on free loopback ports.

    `cluster-node-timeout` is short so that a killed master's replica is promoted within a few seconds.
    """

    node_timeout_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list[RedisServer])

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> RedisClusterServer:
        extra = (
            "--cluster-enabled", "yes", "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-config-file", "nodes.conf", "--cluster-replica-validity-factor", "0",
            # The other masters keep serving while one is down (the default refuses every key until promotion).
            "--cluster-require-full-coverage", "no",
        )  # fmt: skip
        # The bus port defaults to port + 10000, which may be taken or out of range: each node gets a free one.
        self.nodes = [RedisServer(extra_args=(*extra, "--cluster-port", str(free_port()))).start() for _ in range(6)]
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("a Redis Cluster needs redis-cli (it comes with redis-server)")
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports `cluster_state:ok` and knows 3 masters with slots."""

        def ok() -> bool:
            for node in self.nodes:
                if node.process is None:
                    continue
                with redis.Redis(port=node.port, socket_timeout=0.5) as client:
                    info = client.cluster("info")  # pyright: ignore[reportUnknownMemberType]
                    if info.get("cluster_state") != "ok":  # pyright: ignore[reportUnknownMemberType]
                        return False
            return True

        _wait_until(ok, timeout, "cluster_state:ok on every node")

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now."""
        result: list[RedisServer] = []
        for node in self.nodes:
            if node.process is None:
                continue
            with redis.Redis(port=node.port, socket_timeout=0.5) as client:
                if client.info("replication")["role"] == "master":  # pyright: ignore[reportUnknownMemberType, reportIndexIssue]
                    result.append(node)
        return result

    def node_for(self, key: str) -> RedisServer:
        """The running master that serves `key` now."""
        slot = key_slot(key.encode())
        masters = {node.port: node for node in self.masters()}
        for node in masters.values():
            with redis.Redis(port=node.port, socket_timeout=0.5) as client:
                # Every node answers with the whole map: (start, end, [host, port, id] of the master, replicas...)
                slots: list[list[Any]] = client.execute_command("CLUSTER", "SLOTS")  # pyright: ignore[reportAssignmentType]
            for start, end, owner, *_ in slots:
                if start <= slot <= end and int(owner[1]) in masters:
                    return masters[int(owner[1])]
        raise RuntimeError(f"no running master serves slot {slot}")

    def wait_promoted(self, key: str, timeout: float = 30.0) -> RedisServer:
        """After its master died: wait until a running node claims `key`'s slot as its master; return it."""
        found: list[RedisServer] = []

        def promoted() -> bool:
            with contextlib.suppress(RuntimeError):
                found.append(self.node_for(key))
            return bool(found)

        _wait_until(promoted, timeout, f"a new master for {key!r}")
        return found[0]

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def key_slot(key: bytes) -> int:
    """The cluster hash slot of `key` (CRC16 of the hash tag, mod 16384), as redis-py computes it."""
    from redis.crc import key_slot as _key_slot

    return _key_slot(key)


@dataclass
class SentinelServer:
    """One master, one replica and 3 sentinels (quorum 2), `redis-server` children on free loopback ports."""

    master_name: str = "mymaster"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    master: RedisServer | None = None
    replica: RedisServer | None = None
    sentinels: list[RedisServer] = field(default_factory=list[RedisServer])

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    def start(self) -> SentinelServer:
        self.master = RedisServer().start()
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.master.port))).start()
        for _ in range(3):
            sentinel = RedisServer()
            config = sentinel.workdir / "sentinel.conf"
            config.write_text(
                f"port {sentinel.port}\nbind 127.0.0.1\nsentinel resolve-hostnames no\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
                f"dir {sentinel.workdir}\nlogfile {sentinel.workdir / 'sentinel.log'}\n"
            )
            sentinel.process = subprocess.Popen([_redis_binary(), str(config), "--sentinel"])
            wait_for_redis(f"redis://127.0.0.1:{sentinel.port}")
            self.sentinels.append(sentinel)
        self.wait_ready()
        return self

    def current_master_port(self) -> int | None:
        """The master's port as the first running sentinel sees it."""
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            with redis.Redis(port=sentinel.port, socket_timeout=0.5) as client:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                if address:
                    return int(address[1])  # pyright: ignore[reportIndexIssue, reportUnknownArgumentType]
        return None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every sentinel knows the replica and the other sentinels, and the replica is in sync."""

        def ready() -> bool:
            for sentinel in self.sentinels:
                with redis.Redis(port=sentinel.port, socket_timeout=0.5, decode_responses=True) as client:
                    state: dict[str, int] = client.sentinel_master(self.master_name)  # pyright: ignore[reportAssignmentType]
                    if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                        return False
            assert self.replica is not None
            with redis.Redis(port=self.replica.port, socket_timeout=0.5) as client:
                return client.info("replication")["master_link_status"] == "up"  # pyright: ignore[reportIndexIssue]

        _wait_until(ready, timeout, "sentinels to see the replica and each other")

    def failover(self, timeout: float = 20.0) -> None:
        """`SENTINEL FAILOVER` on the first sentinel, retried while the sentinels refuse it (one already under
        way, or still starting)."""
        deadline = time.monotonic() + timeout
        with redis.Redis(port=self.sentinels[0].port, socket_timeout=2) as client:
            while True:
                try:
                    client.execute_command("SENTINEL", "FAILOVER", self.master_name)
                    return
                except redis.ResponseError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def close(self) -> None:
        for server in [*self.sentinels, self.master, self.replica]:
            if server is not None:
                server.close()


@dataclass
class TLSRedisServer:
    """A `redis-server` that speaks only TLS, with a certificate from a CA made for the test (trustme)."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-tls-test-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.pem"

    def url(self, ca: Path | None = None, *, cert_reqs: str | None = None) -> str:
        """A `rediss://` URL that trusts `ca` (default: this server's CA)."""
        query = f"ssl_ca_certs={ca or self.ca_path}"
        if cert_reqs is not None:
            query += f"&ssl_cert_reqs={cert_reqs}"
        return f"rediss://127.0.0.1:{self.port}/0?{query}"

    def start(self) -> TLSRedisServer:
        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_path))
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.cert_chain_pems[0].write_to_path(str(self.workdir / "cert.pem"))
        cert.private_key_pem.write_to_path(str(self.workdir / "key.pem"))
        args = [
            _redis_binary(), "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(self.workdir / "cert.pem"), "--tls-key-file", str(self.workdir / "key.pem"),
            "--tls-ca-cert-file", str(self.ca_path), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args)
        wait_for_redis(self.url())
        return self

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def _docker_socket_answers() -> bool:
    """Whether something listens on the Docker engine's Unix socket (other DOCKER_HOSTs: ask the client)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    return True


def docker_available() -> bool:
    """Whether a Docker engine answers, so testcontainers can start servers.

    docker-py leaks its socket when connecting to a Unix socket fails, so that case is probed with a socket of
    our own first; the client is built with a fixed API version (the default, "auto", asks the daemon inside the
    constructor, where a failure leaves the client unclosed) and closed on every path.
    """
    if not _docker_socket_answers():
        return False
    try:
        import docker  # pyright: ignore[reportMissingTypeStubs]
        from docker.constants import DEFAULT_DOCKER_API_VERSION  # pyright: ignore[reportMissingTypeStubs]

        client = docker.from_env(version=DEFAULT_DOCKER_API_VERSION, timeout=5)  # pyright: ignore[reportUnknownMemberType]
    except Exception:
        return False
    try:
        client.ping()  # pyright: ignore[reportUnknownMemberType]
    except Exception:
        return False
    finally:
        client.close()  # pyright: ignore[reportUnknownMemberType]
    return True


HOW_TO_PROVIDE_POSTGRES = "no PostgreSQL: install postgresql or set TEST_DATABASE_URL"
"""Short on purpose: pytest's short summary cuts long messages (conftest prints the full hint once at the end)."""

HOW_TO_PROVIDE_POSTGRES_LONG = (
    "PostgreSQL tests: apt-get install postgresql, or set TEST_DATABASE_URL, "
    "or serve 127.0.0.1:5432 (user postgres), or run a Docker engine."
)

PG_TEST_USER = "tcs-postgres"
"""The unprivileged user created to run throw-away servers as, when running as root and no `postgres` user exists."""


def postgres_bindir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: on PATH, else `pg_config --bindir`, else the newest /usr/lib/postgresql."""
    on_path = [shutil.which("initdb"), shutil.which("pg_ctl")]
    if on_path[0] and on_path[1]:
        return Path(on_path[0]).resolve().parent
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2] or 0), reverse=True)
    candidates += map(Path, versions)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def _unprivileged_user() -> str:
    """A user PostgreSQL agrees to run as, when we are root: `postgres` if it exists, else one we create."""
    for name in ("postgres", PG_TEST_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_TEST_USER],
        check=True,
        capture_output=True,
    )
    return PG_TEST_USER


def _as_user(user: str) -> list[str]:
    """The prefix that runs a command as `user`: runuser (util-linux), else setpriv, else su."""
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    if shutil.which("setpriv"):
        entry = pwd.getpwnam(user)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
    return ["su", "-s", "/bin/sh", user, "-c", '"$0" "$@"', "--"]


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL (initdb + pg_ctl) in a temporary directory on a free loopback port.

    Trust authentication for user `postgres`; fsync off. As root it runs as an unprivileged user (PostgreSQL
    refuses root). Tests may stop, start, restart it, and hang it (`pause`: SIGSTOP to every server process).
    """

    bindir: Path
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-test-")))
    run_as: str | None = None
    paused: list[int] = field(default_factory=list[int])

    @classmethod
    def create(cls) -> PostgresServer:
        """A server from the binaries on this machine (not started yet).

        Raises:
            RuntimeError: No PostgreSQL binaries here.
        """
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError(HOW_TO_PROVIDE_POSTGRES)
        server = cls(bindir=bindir, run_as=_unprivileged_user() if os.geteuid() == 0 else None)
        if server.run_as is not None:
            user = pwd.getpwnam(server.run_as)
            os.chown(server.workdir, user.pw_uid, user.pw_gid)
        return server

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.run_as is not None:
            command = [*_as_user(self.run_as), *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check, cwd=self.workdir)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            str(self.bindir / "pg_ctl"), action, "-D", str(self.datadir), "-w", "-t", "60",
            "-l", str(self.workdir / "postgres.log"), "-o", options, *extra,
        )  # fmt: skip

    def start(self) -> PostgresServer:
        """Initialise the data directory on first use, then start the server and wait until it accepts connections."""
        if not self.datadir.exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        self._pg_ctl("start")
        return self

    def stop(self) -> None:
        """Stop (fast: open connections are closed); the data stay."""
        self.resume()
        if (self.datadir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`, as an operator would."""
        self.resume()
        self._pg_ctl("restart", "-m", "fast")

    def _processes(self) -> list[int]:
        """The postmaster and its children (backends, background workers)."""
        pid_file = self.datadir / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pids.append(int(stat.parent.name))
        return pids

    def pause(self) -> None:
        """Hang the server: SIGSTOP to the postmaster and every backend. Connections stay open, nothing answers."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)
            self.paused.append(pid)

    def resume(self) -> None:
        """SIGCONT to what `pause` stopped."""
        while self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.paused.pop(), signal.SIGCONT)

    def close(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        self.resume()
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
