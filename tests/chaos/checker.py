"""The read-your-acknowledged-writes checker: what writers got acknowledged, what readers saw, which reads were stale.

A write is acknowledged when its PATCH answered 2xx; the response carries the new `version`. A read that started
at time t and returned version v is *stale* when some version newer than v had been acknowledged before t; its
staleness is t minus the earliest such acknowledgement. It is *stale after δ* when that staleness exceeds δ:
the guarantee of issue 13 is that no read is stale after δ, on any instance, whatever Redis does.
All times are `time.monotonic()` seconds of the harness process.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ("Ack", "Checker", "Read", "Verdict")


@dataclass(frozen=True, slots=True)
class Ack:
    """A write answered 2xx: `version` is the version it created, `at` when its response arrived."""

    user: int
    version: int
    at: float
    instance: str


@dataclass(frozen=True, slots=True)
class Read:
    """A GET that answered 2xx with `version`; `started` is when the request was sent."""

    user: int
    version: int
    started: float
    instance: str


@dataclass(slots=True)
class Verdict:
    """What the checker found over all reads."""

    reads: int = 0
    stale: int = 0
    """Reads stale by any margin (an acknowledged newer version existed when the read started)."""
    stale_after_delta: int = 0
    max_staleness: float = 0.0
    """The largest staleness in seconds, over every stale read."""
    max_versions_behind: int = 0
    stale_by_instance: dict[str, int] = field(default_factory=dict[str, int])
    """Stale-after-δ reads per instance."""
    last_stale_after_delta: float | None = None
    """When the last stale-after-δ read started (to tell "stale until the TTL" from "stale for a moment")."""


class Checker:
    """Collects acknowledgements and reads, and judges the reads afterwards (`verdict`)."""

    __slots__ = ("_acks", "delta", "reads")

    def __init__(self, delta: float = 1.0) -> None:
        self.delta = delta
        self._acks: dict[int, list[Ack]] = {}
        self.reads: list[Read] = []

    def acknowledged(self, ack: Ack) -> None:
        self._acks.setdefault(ack.user, []).append(ack)

    def read(self, read: Read) -> None:
        self.reads.append(read)

    @property
    def acks(self) -> int:
        return sum(len(acks) for acks in self._acks.values())

    def _timeline(self, user: int) -> tuple[list[Ack], list[float], list[int]]:
        """A user's acks by time, their times, and the highest version acknowledged up to each."""
        acks = sorted(self._acks.get(user, []), key=lambda ack: ack.at)
        highest: list[int] = []
        for ack in acks:
            highest.append(max(ack.version, highest[-1] if highest else 0))
        return acks, [ack.at for ack in acks], highest

    def verdict(self) -> Verdict:
        """Judge every read against the acknowledgements made before it started."""
        verdict = Verdict(reads=len(self.reads))
        timelines = {user: self._timeline(user) for user in self._acks}
        for read in self.reads:
            timeline = timelines.get(read.user)
            if timeline is None:
                continue
            acks, times, highest = timeline
            known = bisect.bisect_right(times, read.started)
            if known == 0 or highest[known - 1] <= read.version:
                continue
            # The earliest ack of a version newer than the one read: where the read's staleness starts.
            first_newer = next(ack.at for ack in acks[:known] if ack.version > read.version)
            staleness = read.started - first_newer
            verdict.stale += 1
            verdict.max_staleness = max(verdict.max_staleness, staleness)
            verdict.max_versions_behind = max(verdict.max_versions_behind, highest[known - 1] - read.version)
            if staleness > self.delta:
                verdict.stale_after_delta += 1
                verdict.stale_by_instance[read.instance] = verdict.stale_by_instance.get(read.instance, 0) + 1
                last = verdict.last_stale_after_delta
                verdict.last_stale_after_delta = read.started if last is None else max(last, read.started)
        return verdict
