"""`CachePolicy`: how long a typed cache's entries live, in one frozen Struct shared by settings, manager and spec."""

from __future__ import annotations

import msgspec

__all__ = ("CachePolicy",)


class CachePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Lifetimes and refresh behaviour of a typed cache's entries.

    A `CacheManager` holds the default policy (the application builds it from its settings); a `CacheSpec`
    overrides any of its fields (`CacheSpec.policy`), the rest come from the manager's.
    """

    ttl: float = 300.0
    """Seconds an entry lives (shortened by up to `jitter`)."""
    negative_ttl: float = 30.0
    """Seconds an "absent" entry lives; 0 disables negative caching."""
    stale_ttl: float = 0.0
    """Stale-while-revalidate: for this many seconds after `ttl`, an entry is still served by `get_or_load` /
    `get_many_or_load` while one caller reloads it in the background; 0 disables."""
    early_refresh: float = 0.0
    """Probabilistic early refresh (XFetch) strength, 0 to disable, 1 is typical: as an entry nears the end of
    its TTL, a hit reloads it in the background with rising probability, scaled by how long loads take."""
    jitter: float = 0.1
    """Each TTL is shortened by a random fraction up to this, so entries written together do not expire together."""

    def __post_init__(self) -> None:
        """Refuse lifetimes no cache can honour.

        Raises:
            ValueError: `ttl` is not positive, `jitter` is outside [0, 1), or another field is negative.
        """
        if self.ttl <= 0:
            raise ValueError("ttl must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.negative_ttl < 0 or self.stale_ttl < 0 or self.early_refresh < 0:
            raise ValueError("negative_ttl, stale_ttl and early_refresh must not be negative")

    @property
    def soft(self) -> bool:
        """Whether entries carry a soft expiry (stale-while-revalidate or early refresh)."""
        return self.stale_ttl > 0 or self.early_refresh > 0
