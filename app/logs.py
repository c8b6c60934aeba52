"""Logging: readable text in development, one JSON object per line in production, a request id on each line."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from app.config import LogLevel

__all__ = ("NO_REQUEST_ID", "JsonFormatter", "RequestIdFilter", "TextFormatter", "logging_config", "request_id_var")

NO_REQUEST_ID = "-"
"""The request id of log lines written outside any request."""

request_id_var: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST_ID)
"""The id of the request being served; set by `app.middleware.RequestMiddleware`."""


class RequestIdFilter(logging.Filter):
    """Copy the current request id onto every record as `record.request_id`; never drops a record.

    It is attached to the handler, so it runs in the task that logs, where the context variable is set.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `request_id` to the record."""
        record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """`2024-05-01 12:00:00,123 INFO    app.lifespan [3f2a...] message`, for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record; one without a request id (logged before the filter ran) gets `-`."""
        if not hasattr(record, "request_id"):
            record.request_id = NO_REQUEST_ID
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`, `request_id`, `exception`."""

    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        """Encode the record as one line of JSON; `request_id` is left out outside requests."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id: str = getattr(record, "request_id", NO_REQUEST_ID)
        if request_id != NO_REQUEST_ID:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return self._encoder.encode(entry).decode()


_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")


def logging_config(level: LogLevel, log_format: Literal["text", "json"]) -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: one stderr handler with the request-id filter, on the root.

    The server applies it (uvicorn's `log_config=`, granian's `log_dictconfig=`) in its own process and in every
    worker, before the app starts; the servers' loggers keep no handlers of their own and propagate to the
    root, so they share the format.

    Args:
        level: The root level (`LOG_LEVEL`).
        log_format: `text` or `json` (`LOG_FORMAT`).
    """
    formatter = TextFormatter if log_format == "text" else JsonFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"handlers": [], "propagate": True} for name in _SERVER_LOGGERS},
    }
