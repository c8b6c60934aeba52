"""The providers of one application: the shared cache manager and database, then every domain's objects.

See `app.di` for why each is a zero-parameter closure over the application's `State`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Imported at run time: it becomes the provider's return annotation.
from app.db import Database
from app.di import state_providers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from litestar.datastructures import State
    from litestar.di import Provide

    from app.domain import Domain

__all__ = ("SHARED", "dependencies")

SHARED = {"database": Database}
"""What the lifespan puts on `state` for every domain, by name (`CachePlugin` provides `cache_manager` and the
typed caches)."""


def dependencies(state: State, domains: Sequence[Domain]) -> dict[str, Provide]:
    """The providers of the application whose state is `state`, named after what they provide.

    Raises:
        ValueError: Two domains (or a domain and `SHARED`) provide the same name.
    """
    provides = dict(SHARED)
    for domain in domains:
        if clash := provides.keys() & domain.provides.keys():
            raise ValueError(f"domain {domain.name!r} provides {sorted(clash)}, already provided")
        provides.update(domain.provides)
    return state_providers(state, provides)
