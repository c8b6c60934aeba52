"""`CachePlugin`: the cache library as a Litestar plugin (the only module of `app.cache` that imports Litestar).

Like Litestar's own `ChannelsPlugin`, it is an `InitPlugin` whose `on_app_init` adds its lifespan, state and
dependencies: the lifespan builds the `CacheManager` from a `CacheConfig`, builds every declared typed cache,
starts the manager and puts it and the caches on `app.state`, and closes them at shutdown. Handlers ask for
`cache_manager` or for a typed cache by its spec's name (`CacheSpec.dependency`).

Every provider is a closure without parameters over the application's `State`, so Litestar neither converts
nor validates anything for it per request; no provider is cached across applications (`use_cache`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar.di import Provide
from litestar.plugins import InitPlugin

from app.cache.manager import CacheManager
from app.cache.typed import Cache

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    from litestar import Litestar
    from litestar.config.app import AppConfig
    from litestar.datastructures import State

    from app.cache.backend import CacheBackend
    from app.cache.config import CacheConfig
    from app.cache.manager import CacheSpec

__all__ = ("MANAGER", "CachePlugin")

MANAGER = "cache_manager"
"""The name of the `CacheManager` on `app.state` and as a dependency."""


def _provider(state: State, name: str, returns: Any) -> Provide:
    """A provider of `state[name]`: no parameters, one dictionary lookup per request."""

    def provide() -> Any:
        return state[name]

    provide.__name__ = provide.__qualname__ = name
    provide.__doc__ = f"`app.state.{name}`."
    provide.__annotations__ = {"return": returns}
    return Provide(provide, sync_to_thread=False)


class CachePlugin(InitPlugin):
    """Build, start and close a `CacheManager` with the application, and inject it and its typed caches."""

    __slots__ = ("backend", "config", "specs")

    def __init__(
        self, config: CacheConfig, specs: Sequence[CacheSpec[Any, Any]] = (), *, backend: CacheBackend | None = None
    ) -> None:
        """Configure the plugin; nothing is built until the application starts.

        Args:
            config: The manager's backend, prefix, default policy and options.
            specs: The typed caches to build at start-up, each injected under `spec.dependency`.
            backend: Use this backend instead of the one `config` describes (tests inject faulty ones).

        Raises:
            ValueError: Two specs share a dependency name.
        """
        names = [spec.dependency for spec in specs]
        if duplicated := sorted({name for name in names if names.count(name) > 1} | ({MANAGER} & {*names})):
            raise ValueError(f"cache dependency names must be unique: {duplicated}")
        self.config = config
        self.specs = tuple(specs)
        self.backend = backend

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the lifespan (first, so the application's own lifespans find the manager) and the providers.

        Raises:
            ValueError: A dependency of the plugin is already registered on the application.
        """
        state = app_config.state
        provides: dict[str, Any] = {MANAGER: CacheManager}
        for spec in self.specs:
            provides[spec.dependency] = Cache[spec.key_type, spec.value_type]
        if clash := sorted(provides.keys() & app_config.dependencies.keys()):
            raise ValueError(f"CachePlugin provides {clash}, already registered on the application")
        for name, returns in provides.items():
            app_config.dependencies[name] = _provider(state, name, returns)
        lifespans: list[Any] = app_config.lifespan  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        lifespans.insert(0, self.lifespan)
        app_config.signature_namespace.update(CacheManager=CacheManager, Cache=Cache)
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncGenerator[None]:
        """Build the manager and every declared cache onto `app.state`, start it; close it on the way out."""
        manager = CacheManager.from_config(self.config, self.backend)
        try:
            for spec in self.specs:
                app.state[spec.dependency] = manager.cache(spec)
            manager.start()
            app.state[MANAGER] = manager
            yield
        finally:
            await manager.close()
