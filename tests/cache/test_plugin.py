"""`CachePlugin` on a minimal Litestar application of its own, `CacheManager.from_config` and `CachePolicy`."""

from __future__ import annotations

import ast
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import pytest
from litestar import Litestar, get
from litestar.di import Provide
from litestar.params import Parameter
from litestar.testing import TestClient
from typing_extensions import override

import app.cache
from app.cache import (
    Cache,
    CacheManager,
    CachePolicy,
    CacheSpec,
    CircuitBreakerBackend,
    CoalescingBackend,
    MemoryBackend,
    NullBackend,
)
from app.cache.config import CacheConfig
from app.cache.plugin import CachePlugin
from app.config import Settings
from app.di import Injected

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator


class Point(msgspec.Struct, frozen=True, kw_only=True):
    x: int
    y: int


POINTS = CacheSpec(namespace="points", key_type=int, value_type=Point, policy={"ttl": 60.0})
LABELS = CacheSpec(namespace="point-labels", key_type=int, value_type=str)


class ClosingBackend(MemoryBackend):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    @override
    async def close(self) -> None:
        self.events.append("backend closed")
        await super().close()


@get("/points/{point_id:int}")
async def read_point(
    point_id: Annotated[int, Parameter(ge=1)],
    points: Injected[Cache[int, Point]],
    point_labels: Injected[Cache[int, str]],
    cache_manager: Injected[CacheManager],
) -> dict[str, object]:
    await points.set(point_id, Point(x=point_id, y=2 * point_id))
    return {
        "point": await points.get(point_id),
        "label": await point_labels.get(point_id),
        "same": cache_manager.cache(POINTS) is points,
        "ttl": points.policy.ttl,
        "negative_ttl": points.policy.negative_ttl,
    }


def points_app(events: list[str], **options: object) -> Litestar:
    @asynccontextmanager
    async def own_lifespan(app: Litestar) -> AsyncGenerator[None]:
        manager: CacheManager = app.state.cache_manager  # the plugin's lifespan ran first
        events.append(f"app lifespan sees {manager.backend.name}")
        yield
        events.append("app lifespan ends")

    config = CacheConfig(prefix="plugin", policy=CachePolicy(ttl=5, negative_ttl=7))
    plugin = CachePlugin(config, [POINTS, LABELS], backend=ClosingBackend(events))
    return Litestar([read_point], plugins=[plugin], lifespan=[own_lifespan], **options)  # type: ignore[arg-type]


def test_a_handler_gets_typed_caches_by_name_and_the_manager() -> None:
    events: list[str] = []
    with TestClient(points_app(events)) as client:
        assert client.get("/points/3").json() == {
            "point": {"x": 3, "y": 6},
            "label": None,
            "same": True,
            "ttl": 60.0,  # the spec's override
            "negative_ttl": 7,  # the rest from the manager's policy
        }


def test_the_plugin_lifespan_wraps_the_applications_and_closes_the_backend() -> None:
    events: list[str] = []
    with TestClient(points_app(events)) as client:
        assert client.get("/points/1").status_code == 200
        assert events == ["app lifespan sees memory"]
    assert events == ["app lifespan sees memory", "app lifespan ends", "backend closed"]


def test_each_app_has_its_own_manager() -> None:
    first, second = points_app([]), points_app([])
    with TestClient(first) as one, TestClient(second):
        one.get("/points/1")
        assert first.state.cache_manager is not second.state.cache_manager
        assert first.state.cache_manager.stats()["points"].hits == 1
        assert second.state.cache_manager.stats()["points"].hits == 0


def test_a_name_already_provided_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['points'\]"):
        points_app([], dependencies={"points": Provide(lambda: None, sync_to_thread=False)})
    with pytest.raises(ValueError, match="unique"):
        CachePlugin(CacheConfig(), [POINTS, CacheSpec(namespace="other", key_type=int, value_type=int, name="points")])


def test_from_config_builds_the_backend_the_config_describes() -> None:
    assert isinstance(CacheManager.from_config(CacheConfig()).backend, MemoryBackend)
    assert isinstance(CacheManager.from_config(CacheConfig(enabled=False)).backend, NullBackend)
    redis = CacheManager.from_config(CacheConfig(url="redis://127.0.0.1:1/0", timeout=0.25, near=True))
    assert isinstance(redis.backend, CoalescingBackend)
    assert isinstance(redis.backend.inner, CircuitBreakerBackend)
    assert redis.backend.inner.timeout == 0.25
    assert redis.bus is not None
    plain = CacheManager.from_config(CacheConfig(url="redis://127.0.0.1:1/0", coalesce=False))
    assert isinstance(plain.backend, CircuitBreakerBackend)
    assert plain.bus is None
    signed = CacheManager.from_config(CacheConfig(signing_keys=("k" * 16,)))
    assert signed.signer is not None


def test_the_config_repr_hides_credentials() -> None:
    config = CacheConfig(url="redis://user:hunter2hunter2@127.0.0.1:6379/0?password=x", signing_keys=("s" * 20,))
    assert "hunter2" not in repr(config)
    assert "password" not in repr(config)
    assert "s" * 20 not in repr(config)
    assert "127.0.0.1:6379" in repr(config)


def test_a_policy_refuses_impossible_lifetimes_and_specs_unknown_fields() -> None:
    with pytest.raises(ValueError, match="ttl"):
        CachePolicy(ttl=0)
    with pytest.raises(ValueError, match="jitter"):
        CachePolicy(jitter=1.0)
    with pytest.raises(ValueError, match="ttll"):
        CacheSpec(namespace="x", key_type=int, value_type=int, policy={"ttll": 1.0})
    manager = CacheManager(MemoryBackend(), policy=CachePolicy(ttl=9, stale_ttl=3))
    cache = manager.cache(CacheSpec(namespace="x", key_type=int, value_type=int, policy={"stale_ttl": 0.0}))
    assert cache.policy == CachePolicy(ttl=9, stale_ttl=0.0)


def test_litestar_is_imported_only_by_the_plugin() -> None:
    package = Path(app.cache.__file__).parent
    importers = {
        path.name
        for path in package.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "litestar")
        or (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "litestar" for alias in node.names))
    }
    assert importers == {"plugin.py"}


def test_settings_describe_the_cache_config_with_the_existing_variables() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CACHE_TIMEOUT_MS": "250",
            "CACHE_TTL_SECONDS": "7",
            "CACHE_NEGATIVE_TTL_SECONDS": "0",
            "CACHE_STALE_TTL_SECONDS": "3",
            "CACHE_SIGNING_KEY": "a" * 16 + "," + "b" * 16,
        },
        env_file=None,
    )
    config = settings.cache_config()
    assert config.url == "redis://127.0.0.1:6379/0"
    assert config.timeout == 0.25
    assert config.signing_keys == ("a" * 16, "b" * 16)
    assert config.policy == CachePolicy(ttl=7, negative_ttl=0, stale_ttl=3) == settings.cache_policy
