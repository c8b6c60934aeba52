"""What `python -m app --help` prints and the README's configuration table, both from `Settings` and its docstrings.

`python -m app.usage README.md` rewrites the table between the README's markers (`make readme` runs it).
"""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from app import config
from app.config import Settings, redact_url

__all__ = (
    "TABLE_END",
    "TABLE_START",
    "SettingDoc",
    "effective_settings",
    "settings_docs",
    "settings_table",
    "usage",
    "write_table",
)

TABLE_START = "<!-- settings table: generated from app/config.py by `make readme`; edit the docstrings there -->"
TABLE_END = "<!-- end of settings table -->"
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One setting as documented: its variable, its default as written in the environment, its docstring."""

    variable: str
    default: str
    doc: str


def settings_docs() -> list[SettingDoc]:
    """Every field of `Settings`, in order, with the docstring under it (joined into one line)."""
    docs = _field_docstrings()
    return [
        SettingDoc(field.name.upper(), _as_env_value(field.default), docs.get(field.name, ""))
        for field in msgspec.structs.fields(Settings)
    ]


def _field_docstrings() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(config))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == Settings.__name__:
            for field, after in zip(node.body, [*node.body[1:], None], strict=True):
                if (
                    isinstance(field, ast.AnnAssign)
                    and isinstance(field.target, ast.Name)
                    and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                ):
                    found[field.target.id] = " ".join(after.value.value.split())
    return found


def _as_env_value(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def usage() -> str:
    """The text of `python -m app --help`: the commands, then every setting with its default, one line each."""
    docs = settings_docs()
    name_width = max(len(doc.variable) for doc in docs)
    default_width = max(len(doc.default) for doc in docs)
    lines = [
        "usage: python -m app [serve | check-config | --help]",
        "",
        "  serve          serve HTTP (uvicorn or granian, see SERVER) until SIGTERM; the default",
        "  check-config   validate the environment (and .env), print the effective settings with secrets",
        "                 redacted and exit 0; or print the configuration error and exit 2",
        "  -h, --help     print this and exit",
        "",
        "Settings are read from the environment, then from .env in the working directory:",
        "",
    ]
    lines += [
        f"  {doc.variable:<{name_width}}  {doc.default:<{default_width}}  {doc.doc.replace('`', '')}".rstrip()
        for doc in docs
    ]
    return "\n".join(lines)


def settings_table() -> str:
    """The README's configuration table (Markdown), between its markers."""
    rows = [TABLE_START, "| Variable | Default | Meaning |", "|---|---|---|"]
    for doc in settings_docs():
        default = doc.default if doc.default == "unset" else f"`{doc.default}`"
        meaning = doc.doc.replace("|", r"\|")
        rows.append(f"| `{doc.variable}` | {default} | {meaning} |")
    rows.append(TABLE_END)
    return "\n".join(rows)


def effective_settings(settings: Settings) -> str:
    """`VARIABLE=value` lines for `check-config`: passwords in URLs and secret-named settings redacted."""
    lines: list[str] = []
    for doc, name in zip(settings_docs(), Settings.__struct_fields__, strict=True):
        value: object = getattr(settings, name)
        if value is None:
            shown = ""
        elif any(word in doc.variable for word in _SECRET_WORDS):
            shown = "***"
        elif isinstance(value, str) and "://" in value:
            shown = redact_url(value)
        else:
            shown = _as_env_value(value)
        lines.append(f"{doc.variable}={shown}")
    return "\n".join(lines)


def write_table(readme: Path) -> bool:
    """Replace the table between the markers of `readme`; return whether anything changed."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(TABLE_START)
    end = text.index(TABLE_END) + len(TABLE_END)
    updated = text[:start] + settings_table() + text[end:]
    if updated == text:
        return False
    readme.write_text(updated, encoding="utf-8")
    return True


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"{argument}: {'updated' if write_table(Path(argument)) else 'up to date'}")
