"""Per-cache counters, cheap enough to bump on every call."""

from __future__ import annotations

import msgspec

__all__ = ("CacheStats",)


class CacheStats(msgspec.Struct, kw_only=True):
    """What one typed cache has done since start-up."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    """Lookups answered by a cached "absent" marker."""
    loads: int = 0
    """Keys passed to a loader."""
    coalesced: int = 0
    """Callers that waited on a load another caller had started."""
    errors: int = 0
    """Backend calls that failed (the call degraded to a miss or no-op)."""
    decode_errors: int = 0
    """Entries that failed to decode and were deleted."""
    stale_writes: int = 0
    """Versioned writes refused because a newer version was already cached."""
