"""What 100,000 near-cache entries cost the garbage collector (tracked objects, a full collection), and a hit.

Like the service, it freezes what exists at start-up (`gc.freeze`), then fills a near cache with users decoded
afterwards, the way `Cache` stores them. Run it on this checkout, or on another one to compare (the script
reads the `app` package on `PYTHONPATH`; before the near cache stored values bare, it stored lookup results):

    PYTHONPATH=. python bench/near_gc.py
    PYTHONPATH=/path/to/other/checkout:. python bench/near_gc.py
"""

from __future__ import annotations

import gc
import statistics
import time

from app.cache import near as near_module
from app.cache.entry import Status
from app.cache.near import NearCache
from app.users.models import User
from bench.fixtures import synthetic_users

ENTRIES = 100_000
HITS = 100_000
HIT_ROUNDS = 9


def main() -> None:
    gc.collect()
    gc.freeze()
    base = len(gc.get_objects())
    users: list[User] = synthetic_users(ENTRIES)
    bare = hasattr(near_module, "FrequencySketch")  # this branch stores the value itself
    near = NearCache(max_entries=ENTRIES, **({"max_bytes": 1 << 30} if bare else {}))  # type: ignore[arg-type]
    near.enabled = True
    for user in users:
        near.put(f"cache:user:0123abcd:{user.id}", user if bare else (Status.HIT, user), near.epoch)
    del users
    gc.collect()
    tracked = len(gc.get_objects()) - base
    times: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"{len(near)} entries: {tracked} tracked objects besides the frozen ones;"
        f" full collection {statistics.median(times):.1f} ms (median of 5, min {min(times):.1f})"
    )
    key = f"cache:user:0123abcd:{ENTRIES // 2}"
    get = near.get
    best = float("inf")
    gc.disable()
    for _ in range(HIT_ROUNDS):
        started = time.perf_counter()
        for _ in range(HITS):
            get(key)
        best = min(best, (time.perf_counter() - started) / HITS)
    gc.enable()
    print(f"a hit (NearCache.get of a user): {best * 1e9:.0f} ns (min of {HIT_ROUNDS} rounds of {HITS:,})")


if __name__ == "__main__":
    main()
