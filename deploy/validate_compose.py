"""Validate compose files against the Compose specification's JSON schema (vendored in deploy/schemas/).

Usage: python deploy/validate_compose.py [compose.yaml ...]   (no Docker engine needed; exits 1 on errors)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

__all__ = ("SCHEMA_PATH", "main", "validate")

SCHEMA_PATH = Path(__file__).parent / "schemas" / "compose-spec.json"


def validate(path: Path) -> list[str]:
    """Return the schema violations of one compose file, one readable line each (empty when it is valid).

    Args:
        path: The compose file.
    """
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    return [f"{path}: {'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}" for error in errors]


def main(argv: list[str]) -> int:
    """Validate each file named in `argv` (default `compose.yaml`); print the errors; return the exit status."""
    paths = [Path(arg) for arg in argv] or [Path("compose.yaml")]
    failures = [line for path in paths for line in validate(path)]
    for line in failures:
        print(line, file=sys.stderr)
    if not failures:
        print(f"{', '.join(map(str, paths))}: valid against the Compose specification")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
