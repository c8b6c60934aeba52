"""The database layer's errors, the same whatever the dialect."""

from __future__ import annotations

__all__ = ("DatabaseUnavailableError", "UniqueViolationError")


class DatabaseUnavailableError(Exception):
    """The database did not answer (down, restarting, hung, locked or timed out): worth retrying later.

    A write that raises this may or may not have committed.
    """

    def __init__(self, reason: str) -> None:
        """`reason` says what happened, without secrets (it is logged)."""
        super().__init__(reason)
        self.reason = reason


class UniqueViolationError(Exception):
    """A write would have broken a unique constraint; nothing was written."""
