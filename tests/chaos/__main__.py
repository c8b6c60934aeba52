"""`python -m tests.chaos [SCENARIO ...]`: run the chaos scenarios (all by default) and print the results table.

Options: `--delta SECONDS` (default 1), `--short` (the CI timings), `--list`. A throw-away PostgreSQL
(`PostgresServer`) holds one fresh database per scenario. The table is also written to `.chaos/RESULTS.md`
(git-ignored). Exit status 1 when any scenario broke the guarantee (a stale read after δ, or an error).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

from tests.chaos.report import markdown_table
from tests.chaos.scenarios import SCENARIOS, Result, Timing, run_scenario
from tests.servers import PostgresServer

__all__ = ("main",)

OUTPUT = Path(__file__).resolve().parents[2] / ".chaos" / "RESULTS.md"


async def _fresh_database(server: PostgresServer, name: str) -> str:
    conn = await asyncpg.connect(server.url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


async def run(names: list[str], timing: Timing, delta: float) -> list[Result]:
    server = PostgresServer.create().start()
    results: list[Result] = []
    try:
        for index, name in enumerate(names):
            started = time.monotonic()
            url = await _fresh_database(server, f"chaos_{index}")
            result = await run_scenario(SCENARIOS[name], url, timing=timing, delta=delta)
            results.append(result)
            verdict = result.verdict
            print(
                f"{name}: {verdict.stale_after_delta} stale after δ of {verdict.reads} reads, "
                f"max staleness {verdict.max_staleness:.2f} s, {result.errors} errors "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    finally:
        server.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description="Run the chaos scenarios of issue 13.")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenarios to run (default: all)")
    parser.add_argument("--delta", type=float, default=1.0, help="δ in seconds (default 1)")
    parser.add_argument("--short", action="store_true", help="the short timings the test suite uses")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)} (see --list)")
    timing = Timing.short() if args.short else Timing()
    results = asyncio.run(run(args.scenarios or list(SCENARIOS), timing, args.delta))
    table = markdown_table(results)
    print()
    print(f"δ = {args.delta} s; `make chaos` on this commit")
    print(table)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(f"# Chaos results (δ = {args.delta} s)\n\n{table}", encoding="utf-8")
    return 0 if all(result.holds for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
