"""Ordered SQL migrations, one folder per dialect, applied at start-up and recorded in `schema_migrations`."""

from __future__ import annotations

from importlib.resources import files

__all__ = ("load_migrations",)


def load_migrations(dialect: str) -> list[tuple[str, str]]:
    """Return `(name, sql)` for every `*.sql` file of `dialect`, ordered by name."""
    folder = files(__name__) / dialect
    scripts = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return [(entry.name, entry.read_text(encoding="utf-8")) for entry in sorted(scripts, key=lambda e: e.name)]
