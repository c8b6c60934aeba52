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
