"""`SingleFlight`: concurrent loads of one key share one call, and one call loads a whole batch of keys."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

__all__ = ("SingleFlight",)

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """The loads in flight, by key: a caller that needs a key being loaded awaits that load.

    A load started as a background refresh (the caller is served a stale value) is not joined by `joinable`:
    later callers are served the stale value too instead of waiting; a caller that finds nothing cached joins
    it through `running`.
    """

    __slots__ = ("_refreshing", "_tasks", "running")

    def __init__(self) -> None:
        """No load in flight."""
        self.running: dict[K, asyncio.Future[V | None]] = {}
        """The future of each key being loaded."""
        self._refreshing: set[K] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def joinable(self, key: K) -> asyncio.Future[V | None] | None:
        """The load of `key` to wait for instead of looking it up; `None` when there is none, or a refresh."""
        flight = self.running.get(key)
        return None if flight is None or key in self._refreshing else flight

    def split(self, keys: Sequence[K]) -> tuple[dict[K, asyncio.Future[V | None]], Sequence[K]]:
        """The loads in flight to join (refreshes excepted), and the rest of `keys`, to look up."""
        if not self.running:
            return {}, keys
        waiting = {key: flight for key in keys if (flight := self.joinable(key)) is not None}
        return waiting, [key for key in keys if key not in waiting] if waiting else keys

    @staticmethod
    async def wait(flights: Mapping[K, asyncio.Future[V | None]], found: dict[K, V]) -> dict[K, V]:
        """Wait for `flights` and add the values they found to `found`; a caller's cancellation spares the load."""
        for key, flight in flights.items():
            value = await asyncio.shield(flight)
            if value is not None:
                found[key] = value
        return found

    def start(
        self, keys: list[K], load: Callable[[list[K]], Awaitable[Mapping[K, V | None]]], *, refresh: bool = False
    ) -> dict[K, asyncio.Future[V | None]]:
        """Start one `load(keys)` in a task of its own; return the future of each key.

        `load` returns a value (or `None`) for each key; a key it leaves out resolves to `None`. Its error
        reaches every waiter. The task survives the caller: a cancelled caller does not cancel a shared load.
        """
        loop = asyncio.get_running_loop()
        flights: dict[K, asyncio.Future[V | None]] = {key: loop.create_future() for key in keys}
        self.running.update(flights)
        if refresh:
            self._refreshing.update(keys)
        task = loop.create_task(self._run(keys, load, flights))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flights

    async def _run(
        self,
        keys: list[K],
        load: Callable[[list[K]], Awaitable[Mapping[K, V | None]]],
        flights: dict[K, asyncio.Future[V | None]],
    ) -> None:
        try:
            loaded = await load(keys)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            for flight in flights.values():
                if cancelled:
                    flight.cancel()
                else:
                    flight.set_exception(exc)
                    flight.exception()  # mark retrieved: a load nobody waits for any more is not an error
            if cancelled:
                raise
            return
        finally:
            self._forget(flights)
        for key, flight in flights.items():
            flight.set_result(loaded.get(key))

    def _forget(self, flights: dict[K, asyncio.Future[V | None]]) -> None:
        running = self.running
        for key, flight in flights.items():
            if running.get(key) is flight:
                del running[key]
                self._refreshing.discard(key)

    def detach(self, keys: Iterable[K]) -> None:
        """Let callers that arrive after a write start a fresh load instead of joining one begun before it."""
        if self.running:
            for key in keys:
                self.running.pop(key, None)
                self._refreshing.discard(key)

    async def drain(self) -> None:
        """Cancel the loads still running (background refreshes, abandoned loads) and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
