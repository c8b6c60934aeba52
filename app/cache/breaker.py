"""A backend wrapper with a per-call timeout and a circuit breaker, so an outage costs microseconds."""

from __future__ import annotations

import asyncio
import logging
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from typing_extensions import override

from app.cache.backend import CacheBackendError, WrappingBackend
from app.cache.stats import LatencyHistogram

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from app.cache.backend import CacheBackend, Entry

__all__ = ("BreakerState", "CircuitBreakerBackend", "ReportsBreaker", "wait_within")

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BreakerState(StrEnum):
    """Where the breaker is."""

    CLOSED = "closed"
    """Calls go to the backend."""
    OPEN = "open"
    """Calls fail at once, without touching the backend."""
    HALF_OPEN = "half_open"
    """One probe call is in flight; the others fail at once."""


@runtime_checkable
class ReportsBreaker(Protocol):
    """What metrics and health read of a breaker: a `CircuitBreakerBackend`, or a backend with one per server."""

    @property
    def name(self) -> str:
        """The backend's name."""
        ...

    @property
    def state(self) -> BreakerState:
        """The current state (with several breakers, the worst)."""
        ...

    @property
    def lag_timeouts(self) -> int:
        """Calls that timed out while the event loop lagged (not counted as failures)."""
        ...

    @property
    def latency(self) -> dict[str, LatencyHistogram]:
        """Call latency by operation."""
        ...


class CircuitBreakerBackend(WrappingBackend):
    """Wrap a backend: bound each call by `timeout`, stop calling it after repeated failures.

    After `failure_threshold` consecutive failures the circuit opens and every call raises
    `CacheBackendError` at once. After `reset_timeout` seconds one call is let through as a probe: success
    closes the circuit, failure keeps it open for another `reset_timeout`. Only state changes are logged,
    so an outage writes two lines, not one per request.

    The timeout measures the backend, not the event loop: when its timer fires late because the loop was busy
    (an overloaded worker, a blocking call), the reply has most likely arrived in the meantime, so the call is
    given `timeout` more instead of failing. Only a timer that fires on time ends the call as a backend failure;
    a call that keeps running into a lagging loop ends at `MAX_STRETCH` times `timeout` as a plain
    `CacheBackendError` that the breaker does not count (`lag_timeouts`), so overload alone never opens it.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_probing",
        "failure_threshold",
        "lag_timeouts",
        "last_error",
        "latency",
        "reset_timeout",
        "timeout",
    )

    def __init__(
        self,
        inner: CacheBackend,
        *,
        timeout: float = 0.1,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        latency: dict[str, LatencyHistogram] | None = None,
    ) -> None:
        """Wrap `inner`.

        Args:
            inner: The backend to protect.
            timeout: Seconds one call may take before it counts as a failure.
            failure_threshold: Consecutive failures that open the circuit.
            reset_timeout: Seconds the circuit stays open before a probe.
            clock: Monotonic seconds; tests inject their own.
            latency: Histograms by operation to record into, shared with other breakers (a cluster's masters);
                new ones by default.
        """
        super().__init__(inner)
        self.timeout = timeout
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.last_error: str | None = None
        self.lag_timeouts = 0
        """Calls that ran out of time while the event loop itself was late (not counted as backend failures)."""
        self.latency: dict[str, LatencyHistogram] = latency if latency is not None else new_latency()

    @property
    def state(self) -> BreakerState:
        """The current state."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        return BreakerState.HALF_OPEN if self._probing else BreakerState.OPEN

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        probe = False if self._opened_at is None else self.admit()  # the common case without a call
        started = time.perf_counter()
        try:
            result = await _within(self.timeout, call)
        except BaseException as exc:
            error = self.settle(operation, started, probe, exc)
            if error is None or error is exc:
                raise
            raise error from exc
        # `settle(operation, started, probe, None)`, inline: every standalone read comes this way
        self.latency[operation].observe(time.perf_counter() - started)
        if probe:
            self._probing = False
        self._on_success()
        return result

    def admit(self) -> bool:
        """Let a call through, or raise at once while the circuit is open; whether the call is the probe.

        For a call made outside this wrapper (a cluster's read sent to every master before waiting for any,
        under one deadline, `wait_within`), which must then `settle` exactly once.

        Raises:
            CacheBackendError: The circuit is open (or half open, with its probe in flight).
        """
        if self._opened_at is None:
            return False
        if self._probing or self._clock() - self._opened_at < self.reset_timeout:
            raise CacheBackendError(f"circuit open ({self.last_error})")
        self._probing = True
        return True

    def settle(self, operation: str, started: float, probe: bool, error: BaseException | None) -> BaseException | None:
        """Account for a call that `admit` let through, started at `started` (`time.perf_counter()`).

        `None` is a success; a `CacheBackendError` or a `TimeoutError` a failure (a loop-lag timeout from
        `wait_within` or `_within` is not counted); anything else (a cancellation, a redirection) is neither.

        Returns:
            The error to raise: a `CacheBackendError` for a failure or a timeout, anything else as given.
        """
        if probe:
            self._probing = False
        if not isinstance(error, (CacheBackendError, TimeoutError)) and error is not None:
            return error
        self.latency[operation].observe(time.perf_counter() - started)
        if error is None:
            self._on_success()
            return None
        if isinstance(error, _LoopLagTimeoutError):
            self.lag_timeouts += 1  # the event loop was late, not Redis: the breaker does not count it
            return CacheBackendError(str(error))
        self._on_failure(error)
        if isinstance(error, TimeoutError):
            return CacheBackendError(f"timed out after {self.timeout * 1000:.0f} ms")
        return error

    def _on_failure(self, exc: BaseException) -> None:
        self.last_error = str(exc) or type(exc).__name__
        self._failures += 1
        if self._opened_at is not None:
            self._opened_at = self._clock()
        elif self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            logger.warning(
                "cache backend %s unavailable after %d failures, circuit open: %s",
                self.inner.name,
                self._failures,
                self.last_error,
            )

    def _on_success(self) -> None:
        if self._opened_at is not None:
            logger.warning("cache backend %s answers again, circuit closed", self.inner.name)
            self._opened_at = None
        self._failures = 0

    @override
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._call("get", lambda: self.inner.get_many(keys))

    @override
    async def set_many(self, entries: Sequence[Entry]) -> None:
        await self._call("set", lambda: self.inner.set_many(entries))

    @override
    async def set_many_if_newer(self, entries: Sequence[Entry], versions: Sequence[int]) -> list[bool]:
        return await self._call("set_if_newer", lambda: self.inner.set_many_if_newer(entries, versions))

    @override
    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._call("delete", lambda: self.inner.delete_many(keys))

    @override
    async def ping(self) -> None:
        """Ping the backend directly, bypassing an open circuit, and leave the circuit as it is.

        A readiness probe is not traffic: it must not close an open circuit (or count towards opening one).
        """
        try:
            await _within(self.timeout, self.inner.ping)
        except _LoopLagTimeoutError as exc:
            self.lag_timeouts += 1
            raise CacheBackendError(str(exc)) from exc
        except (CacheBackendError, TimeoutError) as exc:
            raise CacheBackendError(str(exc) or type(exc).__name__) from exc


def new_latency() -> dict[str, LatencyHistogram]:
    """One empty histogram per backend operation."""
    return {op: LatencyHistogram() for op in ("get", "set", "set_if_newer", "delete", "ping")}


MAX_STRETCH = 10
"""A call whose timer keeps firing late (a lagging event loop) still ends after this many times its timeout."""

LATE_FRACTION = 0.25
"""A timer that fires more than this fraction of the timeout after its deadline found the event loop lagging."""


class _LoopLagTimeoutError(TimeoutError):
    """The call ran out of time, but the event loop was late each time the timer fired: not the backend's fault."""


class _Deadline:
    """A timer that cancels the current task, unless it fires late: then the loop, not the backend, was slow."""

    __slots__ = (
        "_cancelling",
        "_handle",
        "_limit",
        "_loop",
        "_task",
        "_timeout",
        "_tolerance",
        "deadline",
        "expired",
        "lagged",
    )

    def __init__(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - only awaited from a task
        self._loop = loop
        self._task = task
        self._timeout = timeout
        self._tolerance = timeout * LATE_FRACTION
        self._cancelling = task.cancelling()
        now = loop.time()
        self._limit = now + timeout * MAX_STRETCH
        self.deadline = now + timeout
        self.expired = False
        self.lagged = False
        self._handle = loop.call_at(self.deadline, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        late = now - self.deadline
        if late > self._tolerance:
            self.lagged = True
            if now < self._limit:
                # Whatever arrived while the loop was blocked is being delivered now: give it `timeout` more.
                self.deadline = min(now + self._timeout, self._limit)
                self._handle = self._loop.call_at(self.deadline, self._fire)
                return
        else:
            self.lagged = False
        self.expired = True
        self._task.cancel()

    def cancel(self) -> None:
        self._handle.cancel()

    def timed_out(self) -> bool:
        """After a `CancelledError`: whether this deadline caused it (and not someone cancelling the task)."""
        return self.expired and self._task.uncancel() <= self._cancelling

    def error(self) -> TimeoutError:
        """What a call that this deadline cut short reports: a loop-lag timeout if the loop was late, else plain."""
        if self.lagged:
            lag = (self._loop.time() - self.deadline) * 1000
            return _LoopLagTimeoutError(f"event loop lagging ({lag:.0f} ms late), not counted against the backend")
        return TimeoutError()


async def wait_within(seconds: float, futures: Sequence[asyncio.Future[Any]]) -> TimeoutError | None:
    """Wait until every one of `futures` is done, for at most `seconds` of backend time (one deadline for all).

    The deadline is `CircuitBreakerBackend`'s: a timer that fires late because the event loop lagged gives the
    futures more time. Whatever they raise is theirs to report; futures still pending at the deadline are left
    to the caller (to cancel, and to `settle` as timed out with the error returned).

    Returns:
        `None` when all are done; else a `TimeoutError` (a loop-lag one, which `settle` does not count against
        a breaker, when the loop was late each time the deadline came).
    """
    pending = [future for future in futures if not future.done()]
    if not pending:
        return None
    deadline = _Deadline(seconds)
    try:
        if len(pending) == 1:
            try:  # noqa: SIM105 - a context manager costs more on this path, every cluster read
                await pending[0]
            except Exception:  # noqa: BLE001, S110 - the future's own outcome, read by the caller
                pass
        else:
            await _all_done(pending)
    except asyncio.CancelledError:
        if deadline.timed_out():
            return deadline.error()
        raise
    finally:
        deadline.cancel()
    return None


def _all_done(futures: Sequence[asyncio.Future[Any]]) -> asyncio.Future[None]:
    """A future done when all of `futures` are: its waiter wakes once, not once per future."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    left = len(futures)

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if not left and not done.done():
            done.set_result(None)

    for future in futures:
        future.add_done_callback(one_done)
    return done


async def _within(seconds: float, call: Callable[[], Awaitable[T]]) -> T:
    """Await `call()` for at most `seconds` of backend time (see `CircuitBreakerBackend`).

    Raises:
        TimeoutError: The deadline passed while the loop was on time.
        _LoopLagTimeoutError: The deadline passed `MAX_STRETCH` times over while the loop was late.
    """
    deadline = _Deadline(seconds)
    try:
        return await call()
    except asyncio.CancelledError:
        if deadline.timed_out():
            raise deadline.error() from None
        raise
    finally:
        deadline.cancel()
