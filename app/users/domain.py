"""The users domain, declared once: what `app/domains.py` lists and the application mounts."""

from __future__ import annotations

# Imported at run time: they become the providers' return annotations.
from app.cache import CacheManager
from app.db import Database, Migrations
from app.domain import Domain
from app.users.caches import ID_BY_UUID, USER_BY_ID, UserCaches
from app.users.controller import UserController
from app.users.models import UserCreate, UserLookup, UserUpdate
from app.users.openapi import refine_user_schemas
from app.users.repository import UserRepository, seed_sample_users, users_table_answers
from app.users.service import UserService
from app.users.warmup import warm_users

__all__ = ("USERS", "user_services")


def user_services(db: Database, manager: CacheManager) -> dict[str, object]:
    """The user caches, the repository over `db` and the service over both, by provider name."""
    caches = UserCaches.of(manager)
    repository = UserRepository(db)
    service = UserService(repository=repository, user_by_id=caches.by_id, id_by_uuid=caches.id_by_uuid)
    return {
        "user_caches": caches,
        "user_repository": repository,
        "user_service": service,
    }


USERS = Domain(
    name="users",
    controllers=[UserController],
    caches=[USER_BY_ID, ID_BY_UUID],  # injected by `CachePlugin` as user_by_id, id_by_uuid
    provides={
        "user_caches": UserCaches,
        "user_repository": UserRepository,
        "user_service": UserService,
    },
    services=user_services,
    migrations=Migrations("app.users.migrations"),
    seed=seed_sample_users,
    readiness={"users": users_table_answers},
    closed_bodies=[UserCreate, UserUpdate, UserLookup],
    refine_openapi=refine_user_schemas,
    warm_up=warm_users,
)
"""Users by id, by UUID, in batches and pages, behind two typed caches."""
