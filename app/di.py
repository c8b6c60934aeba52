"""`Injected[T]` and the zero-parameter providers over `app.state` that every domain's dependencies use.

Each provider reads what the application's lifespan put on its `State` through a closure and takes no
parameters, so Litestar neither converts nor validates anything for it per request. Handlers name what they
need as `Injected[T]`, which Litestar passes through as is: these are typed objects of ours, not request input.

Every provider is a single call on purpose. Litestar parses the parameters of any provider that has some
(a provider chain cost about 4.5 µs per level on the benchmark machine) and runs each dependency level with
more than one provider in an anyio task group (more than a whole cache hit); see bench/README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar

from litestar.di import Dependency, Provide
from litestar.params import SkipValidationMarker

if TYPE_CHECKING:
    from collections.abc import Mapping

    from litestar.datastructures import State

__all__ = ("Injected", "state_provider", "state_providers")

T = TypeVar("T")

Injected: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
"""A dependency injected by name and passed through as is (no per-request validation)."""


def state_provider(state: State, name: str, returns: Any) -> Provide:
    """A provider of `state[name]`, which the lifespan sets: no parameters, one dictionary lookup per request.

    Args:
        state: The application's state (the object the application was built with).
        name: The key on `state`, and the name handlers ask for.
        returns: The type of the value, as the provider's return annotation.
    """

    def provide() -> Any:
        return state[name]

    provide.__name__ = provide.__qualname__ = name
    provide.__doc__ = f"`app.state.{name}`."
    provide.__annotations__ = {"return": returns}
    return Provide(provide, sync_to_thread=False)


def state_providers(state: State, provides: Mapping[str, Any]) -> dict[str, Provide]:
    """`state_provider` for each `name: type` of `provides`."""
    return {name: state_provider(state, name, returns) for name, returns in provides.items()}
