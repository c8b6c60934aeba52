"""`python -m app`: serve with uvicorn from `Settings`."""

from __future__ import annotations

import sys

import uvicorn

from app.config import ConfigError, Settings
from app.server import create_app


def main() -> None:
    """Read settings, then serve until interrupted; a bad setting exits with status 2 and one line."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.log_level == "DEBUG",
    )


if __name__ == "__main__":
    main()
