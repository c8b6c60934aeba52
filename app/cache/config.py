"""`CacheConfig`: everything `CacheManager.from_config` needs to build a manager and its backend."""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

from app.cache.policy import CachePolicy

__all__ = ("CacheConfig",)


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where the cache lives and how it behaves; `repr` hides the URL's credentials and the signing keys."""

    url: str | None = None
    """`redis://...`, `rediss://...` or `redis+sentinel://...`; `None`: the in-process memory backend."""
    cluster: bool = False
    """Treat `url` as one node of a Redis Cluster."""
    sentinel_password: str | None = None
    """The sentinels' own password, for a `redis+sentinel://` URL whose sentinels require one."""
    prefix: str = "cache"
    """Prepended to every key, to share one Redis between applications."""
    timeout: float = 0.1
    """Seconds one Redis call may take before it counts as failed (the circuit breaker's timeout)."""
    coalesce: bool = True
    """Send concurrent reads of one event-loop tick as one MGET."""
    enabled: bool = True
    """`False`: store nothing (`NullBackend`), every read is a miss."""
    memory_max_entries: int = 100_000
    """Size bound of the memory backend."""
    near: bool = False
    """Near caches (L1) in front of Redis for specs that ask for one, invalidated over pub/sub."""
    near_ttl: float = 5.0
    """Seconds a near-cache entry lives at most without the fence (`consistency_bound` 0); with it, the cache's TTL."""
    near_max_entries: int = 10_000
    """Entries each near cache holds at most."""
    near_max_bytes: int = 64 * 1024 * 1024
    """Bytes (estimated) each near cache holds at most."""
    signing_keys: tuple[str, ...] = ()
    """Sign every entry with the first key, accept any (`EntrySigner`); empty: unsigned entries."""
    policy: CachePolicy = CachePolicy()
    """The default lifetimes of every typed cache."""
    consistency_bound: float = 0.0
    """δ in seconds (`app.cache.fence`): no cache answers with a value older than a write acknowledged this long
    ago. `0`: no fence. The application gives the fence its outbox (`CacheFence.reader`)."""
    consistency_retention: float = 600.0
    """Seconds outbox rows are kept: at least the longest an entry lives plus the longest load."""

    def __repr__(self) -> str:
        """The fields, with the URL's password and the signing keys hidden."""
        shown = {name: getattr(self, name) for name in self.__struct_fields__}
        if self.url is not None:
            shown["url"] = _redact(self.url)
        shown["signing_keys"] = f"<{len(self.signing_keys)} keys>"
        if self.sentinel_password is None:
            del shown["sentinel_password"]
        else:
            shown["sentinel_password"] = "***"  # noqa: S105 - the mask, not a password
        return f"CacheConfig({', '.join(f'{name}={value!r}' for name, value in shown.items())})"


def _redact(url: str) -> str:
    """The scheme, host, port and path only: no user info, no query (where credentials can hide)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    return f"{parts.scheme}://{host}{port}{parts.path}"
