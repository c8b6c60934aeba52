"""Per-cache counters, cheap enough to bump on every call."""

from __future__ import annotations

from bisect import bisect_left

import msgspec

__all__ = ("CacheStats", "LatencyHistogram")


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
    stale_serves: int = 0
    """Entries served past their soft TTL while one caller refreshed them (stale-while-revalidate)."""
    refreshes: int = 0
    """Background refreshes started (stale-while-revalidate or early refresh)."""
    near_hits: int = 0
    """Lookups answered by the in-process near cache (L1) without a backend call."""
    near_misses: int = 0
    """Lookups the near cache could not answer (they went on to the backend)."""
    near_invalidations: int = 0
    """Near-cache entries dropped because another process (or this one) changed them."""


class LatencyHistogram:
    """Cumulative-bucket latency histogram of one backend operation; observing is a bisect and two adds."""

    __slots__ = ("bucket_counts", "buckets", "count", "sum")

    DEFAULT_BUCKETS: tuple[float, ...] = (
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    )  # fmt: skip

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        """Create an empty histogram with upper bounds `buckets` (seconds, ascending; +Inf is implied)."""
        self.buckets = buckets
        self.bucket_counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        """Record one duration."""
        self.bucket_counts[bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """`(upper bound, observations <= bound)` pairs in Prometheus form, ending with `+Inf`."""
        total = 0
        pairs: list[tuple[str, int]] = []
        for bound, n in zip((*map(str, self.buckets), "+Inf"), self.bucket_counts, strict=True):
            total += n
            pairs.append((bound, total))
        return pairs
