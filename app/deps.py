"""Providers that hand what the lifespan built to handlers through Litestar DI.

`dependencies(state)` builds the providers of one application. Each reads what that application's lifespan
put on `state` through a closure and takes no parameters, so Litestar neither converts nor validates
anything for it per request. Handlers name what they need as `Injected[T]`, which Litestar passes through
as is: these are typed objects of ours, not request input.

Every provider is a single call on purpose. Litestar parses the parameters of any provider that has some
(a provider chain cost about 4.5 µs per level on the benchmark machine) and runs each dependency level with
more than one provider in an anyio task group (more than a whole cache hit); see bench/README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias, TypeVar
from uuid import UUID

from litestar.di import Dependency, Provide
from litestar.params import SkipValidationMarker

# Imported at run time: Litestar reads the providers' return annotations.
from app.cache import Cache, CacheManager
from app.users.caches import UserCaches
from app.users.models import User
from app.users.repository import UserRepository
from app.users.service import UserService

if TYPE_CHECKING:
    from litestar.datastructures import State

__all__ = ("Injected", "dependencies")

T = TypeVar("T")

Injected: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
"""A dependency injected by name and passed through as is (no per-request validation)."""


def dependencies(state: State) -> dict[str, Provide]:
    """The providers of the application whose state is `state`, named after what they provide."""

    def cache_manager() -> CacheManager:
        """The application's one cache manager."""
        return state.cache_manager

    def user_caches() -> UserCaches:
        """The typed user caches together: `Cache[int, User]`, `Cache[UUID, int]`, `Cache[int, UUID]`."""
        return state.user_caches

    def user_by_id() -> Cache[int, User]:
        """Users by id."""
        return state.user_caches.by_id

    def id_by_uuid() -> Cache[UUID, int]:
        """User ids by UUID."""
        return state.user_caches.id_by_uuid

    def user_repository() -> UserRepository:
        """The application's user repository."""
        return state.user_repository

    def user_service() -> UserService:
        """The user caches over the repository: what the user handlers use."""
        return state.user_service

    providers = (cache_manager, user_caches, user_by_id, id_by_uuid, user_repository, user_service)
    return {provider.__name__: Provide(provider, sync_to_thread=False) for provider in providers}
