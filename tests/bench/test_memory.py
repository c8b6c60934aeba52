"""`bench.memory` on a throw-away redis-server: what the batch path caches per user stays within the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.memory import measure

if TYPE_CHECKING:
    from tests.servers import RedisServer


async def test_a_user_cached_through_the_batch_path_costs_at_most_450_bytes(redis_server: RedisServer) -> None:
    figures = await measure(redis_server.url, 5_000)
    assert set(figures) == {"baseline", "baseline+EX", "by-id entry", "batch path", "uuid path"}
    # 5,000 users: the hash tables' fixed share weighs more than at 100,000 (README figures), hence the margin.
    assert figures["batch path"] <= 450
    assert figures["batch path"] <= figures["by-id entry"] * 1.05  # nothing but the by-id entry
    assert figures["by-id entry"] <= figures["baseline"] * 1.2
