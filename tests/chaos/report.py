"""The results table: per scenario, stale reads after δ, the largest staleness, errors and how long caches were cold."""

from __future__ import annotations

from tests.chaos.scenarios import Result

__all__ = ("HEADER", "markdown_table", "row")

HEADER = (
    "scenario",
    "near",
    "reads",
    "acks",
    "stale>δ",
    "stale any",
    "max staleness s",
    "max versions behind",
    "errors",
    "503 Retry-After",
    "cold s",
    "notes",
)


def row(result: Result) -> tuple[str, ...]:
    verdict = result.verdict
    errors = result.errors
    detail = {**result.read_errors.other, **{f"write {k}": v for k, v in result.write_errors.other.items()}}
    stale_by = ", ".join(f"{name}:{count}" for name, count in sorted(verdict.stale_by_instance.items()))
    notes = [*([f"stale>δ on {stale_by}"] if stale_by else []), *result.notes]
    return (
        result.scenario.name,
        "on" if result.scenario.near else "off",
        str(verdict.reads),
        str(result.acks),
        str(verdict.stale_after_delta),
        str(verdict.stale),
        f"{verdict.max_staleness:.2f}",
        str(verdict.max_versions_behind),
        f"{errors} {detail}" if errors else "0",
        str(result.unavailable),
        f"{result.cold_seconds:.2f}",
        "; ".join(notes),
    )


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    return "\n".join(lines) + "\n"
