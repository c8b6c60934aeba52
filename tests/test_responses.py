"""`JsonResponse`: the same bytes and headers as Litestar's own response path, and the same OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Litestar, get
from litestar.datastructures import ResponseHeader
from litestar.testing import TestClient

from app.responses import JsonResponse
from app.users.models import User, UserBatch

USER = User(
    id=7,
    uuid=UUID("550e8400-e29b-41d4-a716-446655440007"),
    first_name="Émilie",
    last_name="du Châtelet",
    email="emilie@example.com",
    version=3,
    created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    updated_at=datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC),
)


def handlers() -> list[Any]:
    """Fresh handlers for each app: Litestar keeps a handler's response path on the handler once it has served."""

    @get("/plain/user", sync_to_thread=False)
    def plain_user() -> User:
        return USER

    @get("/fast/user", sync_to_thread=False)
    def fast_user() -> JsonResponse[User]:
        return JsonResponse(USER)

    @get("/plain/batch", sync_to_thread=False)
    def plain_batch() -> UserBatch:
        return UserBatch(users=[USER], missing_ids=[8], missing_uuids=[])

    @get("/fast/batch", sync_to_thread=False)
    def fast_batch() -> JsonResponse[UserBatch]:
        return JsonResponse(UserBatch(users=[USER], missing_ids=[8], missing_uuids=[]))

    return [plain_user, fast_user, plain_batch, fast_batch]


def test_the_body_and_headers_are_litestars_own() -> None:
    with TestClient(Litestar(handlers())) as client:
        for name in ("user", "batch"):
            plain, fast = client.get(f"/plain/{name}"), client.get(f"/fast/{name}")
            assert fast.status_code == plain.status_code == 200
            assert fast.content == plain.content
            assert dict(fast.headers) == dict(plain.headers)


def test_the_openapi_document_names_the_type_argument() -> None:
    app = Litestar(handlers())
    paths = app.openapi_schema.to_schema()["paths"]
    assert paths["/fast/user"]["get"]["responses"]["200"] == paths["/plain/user"]["get"]["responses"]["200"]


def test_headers_set_on_a_layer_still_reach_the_response() -> None:
    layered = Litestar(handlers(), response_headers=[ResponseHeader(name="x-layer", value="on")])
    with TestClient(layered) as client:
        response = client.get("/fast/user")
        assert response.headers["x-layer"] == "on"
        assert response.json()["first_name"] == "Émilie"
