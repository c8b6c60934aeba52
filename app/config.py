"""Settings: one frozen Struct, read from the environment (and `.env`) once, at start-up."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec

from app.cache.config import CacheConfig
from app.cache.policy import CachePolicy
from app.cache.sentinel import SENTINEL_SCHEME, SentinelURL

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("ConfigError", "Settings", "redact_url")

PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=30 * 86400)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=30 * 86400)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(Exception):
    """A setting has a bad value; the message names the environment variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the service can be configured with. Each field is read from the upper-case variable."""

    redis_url: str | None = None
    """`redis://[:password@]host:port/db`, `rediss://...` or
    `redis+sentinel://[user:password@]host:port[,host:port...]/master_name[/db]`; unset: the memory backend."""
    redis_cluster: bool = False
    """Treat `REDIS_URL` as one node of a Redis Cluster."""
    database_url: str | None = None
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `postgresql://user:password@host:5432/db`;
    unset: SQLite at `data/users.db`."""
    cache_ttl_seconds: PositiveSeconds = 300.0
    """Lifetime of a cached user (shortened by up to 10% jitter)."""
    cache_negative_ttl_seconds: Seconds = 30.0
    """Lifetime of a cached "no such user"; `0` turns negative caching off."""
    cache_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """A cache call slower than this counts as failed, and the request goes to the database."""
    cache_prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = "tcs"
    """Prepended to every cache key, so several services can share one Redis."""
    cache_max_entries: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    """Size bound of the memory backend (LRU)."""
    cache_enabled: bool = True
    """`false`: store nothing, every read goes to the database (for tests and the miss-path benchmark)."""
    cache_coalesce: bool = True
    """Send concurrent cache reads of one event-loop tick to Redis as one MGET."""
    cache_stale_ttl_seconds: Seconds = 30.0
    """Stale-while-revalidate: how long past its TTL an entry is still served while one request reloads it."""
    cache_early_refresh: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.0
    """Probabilistic early refresh (XFetch) of hot entries close to expiry: `0` off, `1` typical."""
    cache_near_enabled: bool = False
    """Near cache (L1): decoded values in process, in front of Redis, invalidated across replicas over pub/sub."""
    cache_near_ttl_seconds: PositiveSeconds = 5.0
    """Longest life of a near-cache entry when the consistency fence is off (`CACHE_CONSISTENCY_BOUND_MS=0`); with
    it on, entries live until invalidated or evicted, at most `CACHE_TTL_SECONDS` (docs/consistency.md)."""
    cache_near_max_entries: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    """Entries each near cache holds at most; past it, keys asked for once do not push out keys that come back."""
    cache_near_max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024 * 1024
    """Bytes (estimated: key, value and what it holds) each near cache holds at most."""
    seed_sample_users: bool = True
    """Insert the ten sample users into an empty database."""
    log_level: LogLevel = "INFO"
    """`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (any case); `DEBUG` also turns on the access log."""
    host: str = "127.0.0.1"
    """The address to listen on (`0.0.0.0` for every interface, as in the image)."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """The TCP port to listen on."""
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    """How many worker processes serve requests (1-64), each with its own pools."""
    server: Literal["uvicorn", "granian"] = "uvicorn"
    """The HTTP server of `python -m app`: uvicorn (uvloop, httptools) or granian (Rust HTTP, uvloop)."""
    log_format: Literal["text", "json"] = "text"
    """`text` (readable, for development) or `json` (one object per line, for production; the image sets it)."""
    # -- database faults and timeouts --
    database_connect_timeout_seconds: Seconds = 30.0
    """At start-up, how long to retry the first database connection (with backoff) before exiting with status 3."""
    database_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 5000
    """Longest one database operation may take (SQLite: its busy timeout); then the request gets 503."""
    database_acquire_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=600_000)] = 2000
    """Longest a request waits for a pooled PostgreSQL connection (or a new one); then 503."""
    database_ready_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 1000
    """`/health/ready` reports the database down when it does not answer within this."""
    # -- Operations (issue 11, items 11-15): overload, slow clients, cache signing, metrics port --
    max_in_flight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 256
    """Requests one worker serves at once; beyond it a request gets 503 with `Retry-After` at once (the health
    probes and /metrics are exempt). 0: no bound."""
    overload_retry_after_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 1
    """The `Retry-After` of an overload 503."""
    http_header_timeout_seconds: PositiveSeconds = 10.0
    """A connection that has not sent a request's complete headers this long after it opened (or after its
    previous response) is closed."""
    http_body_timeout_seconds: PositiveSeconds = 30.0
    """uvicorn only: a request whose body has not arrived this long after its headers is dropped."""
    http_keep_alive_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 5
    """uvicorn: an idle keep-alive connection is closed after this long (granian: HTTP_HEADER_TIMEOUT_SECONDS)."""
    cache_signing_key: Annotated[str, msgspec.Meta(pattern=r"^[!-+\--~]{16,64}(,[!-+\--~]{16,64})*$")] | None = None
    """Sign cache entries with a keyed BLAKE2b MAC; entries with a bad or missing tag are misses. A comma-separated
    list of keys of 16 to 64 printable ASCII characters: the first signs, all verify (key rotation)."""
    metrics_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    """Serve /metrics on this port (on HOST) instead of the API port."""
    # Redis Sentinel (issue 14).
    redis_sentinel_password: str | None = None
    """The sentinels' own password, when `REDIS_URL` is `redis+sentinel://...` and they require one (the URL's
    password is the master's)."""
    # -- Consistency (issue 13): the staleness bound after an acknowledged write --
    cache_consistency_bound_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 1000
    """δ: once a write is acknowledged, no replica answers with an older version after this many milliseconds,
    whatever Redis does; each replica applies the cache outbox every δ/4 and reads from the database while it
    could not for δ. `0` turns the outbox sync and the trust gate off."""
    # -- Cold starts (issue 15) --
    cache_warmup_entries: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    """At start-up, if the database answers then, each domain loads up to this many of its likely hottest entries
    into its caches, in the background while requests are served (users: the newest users, 200 per query and
    per pipeline; an entry cached at the same or a newer version is kept). `0` (the default): no warm-up, the
    caches fill as requests miss."""

    def __repr__(self) -> str:
        """The fields, with URL credentials redacted and the signing keys hidden."""
        shown: list[str] = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, str) and name.endswith("_url"):
                value = redact_url(value)
            elif name in {"cache_signing_key", "redis_sentinel_password"} and value is not None:
                value = REDACTED
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
        """Read settings from `environ` (default `os.environ`), falling back to `env_file` if it exists.

        Raises:
            ConfigError: A variable has a bad value; the message names it.
        """
        environ = os.environ if environ is None else environ
        values = _read_env_file(Path(env_file)) if env_file and Path(env_file).is_file() else {}
        values.update(environ)
        raw: dict[str, str | None] = {}
        for name in cls.__struct_fields__:
            value = values.get(name.upper(), "").strip()
            if value:
                raw[name] = value.upper() if name == "log_level" else value
            elif name in _NULLABLE:
                raw[name] = None
        try:
            settings = msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(_name_variable(str(exc))) from None
        settings.validate_urls()
        return settings

    def validate_urls(self) -> None:
        """Check the URL schemes.

        Raises:
            ConfigError: A URL has an unsupported scheme.
        """
        if self.redis_url is not None and urlsplit(self.redis_url).scheme == SENTINEL_SCHEME:
            try:
                SentinelURL.parse(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"REDIS_URL: {exc}, got {redact_url(self.redis_url)!r}") from None
            if self.redis_cluster:
                raise ConfigError("REDIS_CLUSTER: a redis+sentinel:// URL names a master, not a cluster")
        elif self.redis_url is not None and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(
                "REDIS_URL: expected a redis://, rediss:// or redis+sentinel:// URL, "
                f"got {redact_url(self.redis_url)!r}"
            )
        if self.database_url is not None:
            scheme = urlsplit(self.database_url).scheme
            if scheme not in {"sqlite", "postgresql", "postgres"}:
                raise ConfigError(
                    f"DATABASE_URL: expected sqlite:///path or postgresql://..., got {redact_url(self.database_url)!r}"
                )
        # Input validation (issue 11): a port that is not a number would only fail when the pool first connects.
        for variable, url in (("REDIS_URL", self.redis_url), ("DATABASE_URL", self.database_url)):
            if url is not None:
                _check_port(variable, url)

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file to use, or `None` when the database is not SQLite."""
        if self.database_url is None:
            return "data/users.db"
        if self.database_url.startswith("sqlite:"):
            return self.database_url.removeprefix("sqlite:").removeprefix("//").removeprefix("/") or ":memory:"
        return None

    @property
    def cache_policy(self) -> CachePolicy:
        """The default lifetimes of every typed cache (`CACHE_TTL_SECONDS`, `CACHE_NEGATIVE_TTL_SECONDS`, ...)."""
        return CachePolicy(
            ttl=self.cache_ttl_seconds,
            negative_ttl=self.cache_negative_ttl_seconds,
            stale_ttl=self.cache_stale_ttl_seconds,
            early_refresh=self.cache_early_refresh,
        )

    def cache_config(self) -> CacheConfig:
        """The cache plugin's configuration: `REDIS_URL`, `REDIS_CLUSTER` and the `CACHE_*` variables."""
        return CacheConfig(
            url=self.redis_url,
            cluster=self.redis_cluster,
            sentinel_password=self.redis_sentinel_password,
            prefix=self.cache_prefix,
            timeout=self.cache_timeout_ms / 1000,
            coalesce=self.cache_coalesce,
            enabled=self.cache_enabled,
            memory_max_entries=self.cache_max_entries,
            near=self.cache_near_enabled,
            near_ttl=self.cache_near_ttl_seconds,
            near_max_entries=self.cache_near_max_entries,
            near_max_bytes=self.cache_near_max_bytes,
            signing_keys=tuple(key.strip() for key in (self.cache_signing_key or "").split(",") if key.strip()),
            policy=self.cache_policy,
            consistency_bound=self.cache_consistency_bound_ms / 1000,
            # Rows are kept as long as an entry they fence can live, plus the longest load and a minute.
            consistency_retention=max(self.cache_ttl_seconds, self.cache_negative_ttl_seconds)
            + self.cache_stale_ttl_seconds
            + self.database_timeout_ms / 1000
            + 60.0,
        )

    def describe(self) -> str:
        """One log line describing the settings, with passwords redacted."""
        cache = redact_url(self.redis_url) if self.redis_url else "memory"
        database = redact_url(self.database_url) if self.database_url else f"sqlite:///{self.sqlite_path}"
        return f"cache={cache} database={database} ttl={self.cache_ttl_seconds}s log_level={self.log_level}"


_NULLABLE = {"redis_url", "database_url"}


def _check_port(variable: str, url: str) -> None:
    """Raise `ConfigError` naming `variable` if `url` has a port that is not a number from 0 to 65535."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    for host in hosts.split(","):  # libpq and asyncpg accept several hosts: `host1:5432,host2:5433`
        try:
            parts._replace(netloc=f"{credentials}{at}{host}").port  # noqa: B018 - the property checks the port
        except ValueError:
            raise ConfigError(f"{variable}: the port must be a number from 0 to 65535, got {host!r}") from None


def _name_variable(message: str) -> str:
    """Turn msgspec's "... - at `$.port`" into "PORT: ..."."""
    text, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{path.rstrip('`').upper()}: {text}"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature|sig$", re.IGNORECASE)
"""A query parameter whose name matches this carries a credential (password, sslpassword, api_key, token...)."""

REDACTED = "***"


def redact_url(url: str) -> str:
    """Return `url` with every credential replaced by `***`.

    That is the password of the user info, and the value of every query parameter whose name looks like a
    credential (`password`, `sslpassword`, `token`, `secret`, `api_key`, `auth`, ...). A URL that cannot be
    parsed is replaced entirely.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        if ":" in credentials:
            netloc = f"{credentials.partition(':')[0]}:{REDACTED}@{host}"
    query = parts.query
    if query:
        query = "&".join(_redact_parameter(item) for item in query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url  # urlunsplit would normalise it (`sqlite:///x` to `sqlite:/x`)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_parameter(item: str) -> str:
    name, sep, _ = item.partition("=")
    if sep and _SECRET_PARAMETER.search(unquote(name)):
        return f"{name}={REDACTED}"
    return item
