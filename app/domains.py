"""The domains the application mounts: the one place that names them."""

from __future__ import annotations

from app.users.domain import USERS

__all__ = ("DOMAINS",)

DOMAINS = (USERS,)
"""Mounted in this order; `create_app(settings, domains=...)` takes another list (tests add their own)."""
