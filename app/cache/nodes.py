"""What a backend with several servers reports about each one (for `/health/ready`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ("NodeHealth", "ReportsNodes")


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One Redis server the backend writes to: a cluster's master, or the master a Sentinel names now."""

    address: str
    """`host:port`."""
    role: str
    """`master` (the only role reported today)."""
    status: str
    """`ok`, or `down` when it did not answer a PING."""
    error: str | None = None
    breaker: str | None = None
    """This master's own circuit breaker (`closed`, `open`, `half_open`) on a cluster; `None` elsewhere."""


@runtime_checkable
class ReportsNodes(Protocol):
    """A backend that can ping each of its servers separately."""

    async def nodes_health(self) -> list[NodeHealth]:
        """Ping each master directly (never through a circuit breaker); never raises."""
        ...
