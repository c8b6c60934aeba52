"""Providers that hand what the lifespan built to handlers through Litestar DI.

The user providers form a chain (cache manager -> typed user caches -> service) rather than a fan-out:
Litestar resolves each level with more than one provider in an anyio task group, which cost more than the
whole cache hit on the benchmark; a chain of one-provider levels is three plain calls.
"""

from __future__ import annotations

from uuid import UUID

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from app.cache import Cache, CacheManager
from app.users.caches import UserCaches
from app.users.models import User
from app.users.repository import UserRepository
from app.users.service import UserService

__all__ = ("app_dependencies", "user_dependencies")


def provide_cache_manager(state: State) -> CacheManager:
    """The application's one cache manager."""
    return state.cache_manager


def provide_user_repository(state: State) -> UserRepository:
    """The application's user repository."""
    return state.user_repository


def provide_user_caches(cache_manager: NamedDependency[CacheManager]) -> UserCaches:
    """The typed user caches: `Cache[int, User]`, `Cache[UUID, int]`, `Cache[int, UUID]`."""
    return UserCaches.of(cache_manager)


def provide_user_by_id(user_caches: NamedDependency[UserCaches]) -> Cache[int, User]:
    """Users by id, for handlers that want the cache itself."""
    return user_caches.by_id


def provide_id_by_uuid(user_caches: NamedDependency[UserCaches]) -> Cache[UUID, int]:
    """User ids by UUID, for handlers that want the cache itself."""
    return user_caches.id_by_uuid


def provide_user_service(state: State, user_caches: NamedDependency[UserCaches]) -> UserService:
    """A `UserService` over the injected caches and the application's repository."""
    return UserService(
        repository=state.user_repository,
        user_by_id=user_caches.by_id,
        id_by_uuid=user_caches.id_by_uuid,
        uuid_by_id=user_caches.uuid_by_id,
    )


app_dependencies = {
    "cache_manager": Provide(provide_cache_manager, sync_to_thread=False),
    "user_repository": Provide(provide_user_repository, sync_to_thread=False),
}
"""Registered on the application."""

user_dependencies = {
    "user_caches": Provide(provide_user_caches, sync_to_thread=False),
    "user_by_id": Provide(provide_user_by_id, sync_to_thread=False),
    "id_by_uuid": Provide(provide_id_by_uuid, sync_to_thread=False),
    "user_service": Provide(provide_user_service, sync_to_thread=False),
}
"""Registered on the user controller."""
