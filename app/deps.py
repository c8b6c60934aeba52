"""Providers that hand what the lifespan built to handlers through Litestar DI."""

from __future__ import annotations

from uuid import UUID

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from app.cache import Cache, CacheManager
from app.users.caches import ID_BY_UUID, USER_BY_ID, UUID_BY_ID
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


def provide_user_by_id(cache_manager: NamedDependency[CacheManager]) -> Cache[int, User]:
    """Users by id."""
    return cache_manager.cache(USER_BY_ID)


def provide_id_by_uuid(cache_manager: NamedDependency[CacheManager]) -> Cache[UUID, int]:
    """User ids by UUID."""
    return cache_manager.cache(ID_BY_UUID)


def provide_uuid_by_id(cache_manager: NamedDependency[CacheManager]) -> Cache[int, UUID]:
    """User UUIDs by id."""
    return cache_manager.cache(UUID_BY_ID)


def provide_user_service(
    user_repository: NamedDependency[UserRepository],
    user_by_id: NamedDependency[Cache[int, User]],
    id_by_uuid: NamedDependency[Cache[UUID, int]],
    uuid_by_id: NamedDependency[Cache[int, UUID]],
) -> UserService:
    """A `UserService` over the injected caches and repository."""
    return UserService(repository=user_repository, user_by_id=user_by_id, id_by_uuid=id_by_uuid, uuid_by_id=uuid_by_id)


app_dependencies = {
    "cache_manager": Provide(provide_cache_manager, sync_to_thread=False),
    "user_repository": Provide(provide_user_repository, sync_to_thread=False),
}
"""Registered on the application."""

user_dependencies = {
    "user_by_id": Provide(provide_user_by_id, sync_to_thread=False),
    "id_by_uuid": Provide(provide_id_by_uuid, sync_to_thread=False),
    "uuid_by_id": Provide(provide_uuid_by_id, sync_to_thread=False),
    "user_service": Provide(provide_user_service, sync_to_thread=False),
}
"""Registered on the user controller."""
