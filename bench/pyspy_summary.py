"""Summarise a py-spy raw (collapsed) profile by subsystem: where the CPU time of one server went.

Each sample is charged to the innermost frame that belongs to a known package, so time spent in the standard
library (asyncio, contextlib, weakref, ...) counts for whoever called it. See bench/README.md, "Profiling".

    python -m bench.pyspy_summary stacks.txt [--requests N --rate HZ]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

__all__ = ("SUBSYSTEMS", "summarise")

SUBSYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("redis-py", r"\((redis|hiredis)/"),
        ("app.cache", r"\(app/cache/"),
        ("app.users (service, controller, repository)", r"\(app/users/"),
        ("app middleware, deps, errors, logs", r"\(app/"),
        ("aiosqlite", r"\(aiosqlite/"),
        ("anyio (task groups of Litestar DI)", r"\(anyio/"),
        ("litestar DI + signature parsing", r"\(litestar/(_kwargs|_signature|di)"),
        ("litestar response + serialization", r"\(litestar/(response|serialization|handlers)"),
        ("litestar routing, middleware, other", r"\(litestar/"),
        ("msgspec", r"\(msgspec/"),
        ("uvicorn + httptools", r"\((uvicorn|httptools)/"),
    )
)


def summarise(text: str) -> tuple[Counter[str], int]:
    """Return samples per subsystem and the sample total of a py-spy `--format raw` file."""
    counts: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in reversed(stack.split(";")):
            name = next((name for name, pattern in SUBSYSTEMS if pattern.search(frame)), None)
            if name is not None:
                counts[name] += samples
                break
        else:
            counts["event loop, stdlib only"] += samples
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile by subsystem.")
    parser.add_argument("stacks", type=Path, help="output of py-spy record --format raw")
    parser.add_argument("--requests", type=int, help="requests served while recording (adds µs per request)")
    parser.add_argument("--rate", type=float, default=100, help="the --rate given to py-spy (default 100)")
    args = parser.parse_args()
    counts, total = summarise(args.stacks.read_text(encoding="utf-8"))
    per_request = 1e6 / args.rate / args.requests if args.requests else None
    print(f"{total} samples" + (f", {total * per_request:.0f} µs CPU per request" if per_request else ""))
    for name, samples in counts.most_common():
        cost = f"  {samples * per_request:6.1f} µs/request" if per_request else ""
        print(f"{100 * samples / total:5.1f}%{cost}  {name}")


if __name__ == "__main__":
    main()
