"""The consistency fence: durable invalidations applied by every replica, and the trust gate in front of the caches.

Writers record one invalidation per cache key in the database, in the write's own transaction (an outbox; the
application implements `OutboxReader` over it). Every replica runs `CacheFence.sync` every `bound / 4`
seconds: it reads the invalidations it has not applied yet, drops those keys from its near caches, and writes a
versioned marker under each key in the backend (a miss for readers, which the compare-and-set refuses to
replace with an older version; a tombstone for a delete). Applying a row twice is harmless, so every replica
applies every row, and whichever can reach the backend makes the invalidation land.

The trust gate: a replica answers from its caches (near or remote) only while its last successful sync
*started* less than `bound` seconds ago; otherwise reads go to the loader (the database). A write acknowledged
at time `a` has its row committed before `a`; a read at `r >= a + bound` is answered from a cache only if a
sync that started after `a` completed, and that sync applied the row. See `docs/consistency.md`.

The backend's connection epoch: a restart, a rollback to an older snapshot or a failover of Redis breaks the
read connection. `revoke` (the read connection's reconnect hook) withdraws trust at once, and the first sync
on a new connection re-applies every retained row, which fences whatever the new server remembers.

On a Redis Cluster, trust is withdrawn per master instead: `withhold` (the cluster's per-master connect hook)
puts one master's address in `withheld`, and lookups treat the replies of the keys it owns as misses until a
sync that started after that connect has re-applied every retained row; the other masters' keys stay trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from app.cache.near import NearCache
    from app.cache.typed import Cache

__all__ = ("CacheFence", "Invalidation", "OutboxReader")

logger = logging.getLogger(__name__)

Invalidation = tuple[int, str, str, int, str]
"""One outbox row: `(id, namespace, key text, version, kind)`; `kind` is `create`, `update` or `delete`."""


class OutboxReader(Protocol):
    """Where the invalidations are durable (the application's database)."""

    async def read_after(self, after_id: int, limit: int) -> Sequence[Invalidation]:
        """Up to `limit` rows with an id above `after_id`, in id order (ids grow in commit order)."""
        ...

    async def prune(self, older_than: float) -> None:
        """Delete rows recorded more than `older_than` seconds ago."""
        ...


class CacheFence:
    """Applies the outbox to the caches it guards, and tells them whether they may be trusted.

    The hot path reads `trusted_until` (a `time.monotonic()` deadline), `epoch` and `withheld`; nothing else.
    """

    __slots__ = (
        "_caches",
        "_connects",
        "_cursor",
        "_last_prune",
        "_last_success",
        "_lock",
        "_near",
        "_revoked_at",
        "_stopping",
        "_task",
        "_validated_epoch",
        "_wake",
        "batch",
        "bound",
        "epoch",
        "failures",
        "locate",
        "period",
        "probe",
        "reader",
        "retention",
        "syncs",
        "trusted_until",
        "withheld",
    )

    def __init__(
        self,
        *,
        bound: float = 1.0,
        retention: float = 600.0,
        reader: OutboxReader | None = None,
        probe: Callable[[], Awaitable[Any]] | None = None,
        period: float | None = None,
        batch: int = 1000,
    ) -> None:
        """Guard caches with a staleness bound.

        Args:
            bound: δ, in seconds: no cache answers with a value older than a write acknowledged this long ago.
            retention: Seconds outbox rows are kept: at least the longest an entry lives (TTL plus stale TTL)
                plus the longest load, so a re-apply after a backend restart covers every entry it may hold.
            reader: The outbox; may be set later (`reader`), e.g. once the database is connected.
            probe: Called at the start of every sync, before the epoch is read: it (re)opens the backend's read
                connection, so a reconnect is seen by the sync rather than by the first reader after it.
            period: Seconds between syncs; default `bound / 4`.
            batch: Rows read per query.
        """
        if bound <= 0 or retention <= 0:
            raise ValueError("bound and retention must be positive")
        self.bound = bound
        self.retention = retention
        self.reader = reader
        self.probe = probe
        self.period = bound / 4 if period is None else period
        self.batch = batch
        self.trusted_until = 0.0
        """`time.monotonic()` before which the caches may answer: the last good sync's start plus `bound`."""
        self.epoch = 0
        """Counts `revoke` and `withhold` calls (backend reconnects): a lookup whose round trip saw it change is a
        miss."""
        self.withheld: Mapping[str, int] = {}
        """The masters whose replies are not trusted yet (`withhold`), each with the `epoch` of its last connect.
        Replaced, never changed in place: a lookup keeps the one it read at its gate as a snapshot."""
        self.locate: Callable[[str], str | None] | None = None
        """The address of the master that owns a backend key (set with `withhold`'s hook, on a cluster)."""
        self.syncs = 0
        self._revoked_at = 0
        """`epoch` after the last `revoke`."""
        self._connects: dict[str, int] = {}
        """`epoch` after each master's last `withhold` (kept after its release: see `screen`)."""
        self.failures = 0
        self._validated_epoch = -1
        self._cursor = 0
        self._last_success = -float("inf")
        self._last_prune = 0.0
        self._caches: dict[str, Cache[Any, Any]] = {}
        self._near: list[NearCache] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    # -- what the caches ask ---------------------------------------------------------------------------

    def trusted(self) -> bool:
        """Whether the caches may answer now."""
        return time.monotonic() < self.trusted_until

    def attach(self, cache: Cache[Any, Any], near: NearCache | None = None) -> None:
        """Guard `cache` (and its near cache): apply its namespace's rows, and gate its reads."""
        self._caches[cache.namespace] = cache
        if near is not None:
            self._near.append(near)
            near.trusted_until = self.trusted_until

    def revoke(self) -> None:
        """Stop trusting the caches until a sync has re-applied the whole outbox (a backend reconnect).

        The background loop starts that sync at once rather than at its next period.
        """
        self.epoch += 1
        self._revoked_at = self.epoch
        self._set_trust(0.0)
        self._wake.set()

    def withhold(self, address: str) -> None:
        """Stop trusting one master's replies until a sync that started after now has re-applied the outbox.

        Its connection opened: perhaps a new server. The other masters' keys stay trusted. Without `locate` (no
        way to tell a key's master) this is `revoke`. The background loop starts that sync at once.
        """
        if self.locate is None:
            self.revoke()
            return
        self.epoch += 1
        self.withheld = {**self.withheld, address: self.epoch}
        self._connects[address] = self.epoch
        self._wake.set()

    def screen(self, keys: Sequence[str], replies: list[bytes | None], withheld: Mapping[str, int], epoch: int) -> bool:
        """Make misses (`None`) of the `replies` to `keys` that may not be served; `False`: none may be.

        For a lookup that read `epoch` and `withheld` at its gate, before its round trip. After a `revoke` since
        the gate, none may be. Otherwise a reply may not be served when its key's master was withheld at the gate,
        or connected (or gained the key's slot: the cluster announces that too) since: the reply may have come
        over that new connection, and that master's replay may even have ended since. Each change of a slot's
        owner is announced, so a key's master now is the one the lookup was routed to, or one announced since.
        """
        if self._revoked_at > epoch:
            return False
        locate = self.locate
        if locate is None:
            return not withheld
        fresh = {address for address, at in self._connects.items() if at > epoch} if self.epoch != epoch else ()
        for index, key in enumerate(keys):
            if replies[index] is not None:
                owner = locate(key)
                if owner in withheld or owner in fresh:
                    replies[index] = None
        return True

    def _set_trust(self, until: float) -> None:
        self.trusted_until = until
        for near in self._near:
            near.trusted_until = until

    # -- the sync ----------------------------------------------------------------------------------------

    async def sync(self) -> bool:
        """Apply the rows not applied yet (all retained rows after a reconnect). Returns whether it succeeded.

        Trust is extended to `start + bound` only when every row read was applied to the backend and no
        reconnect happened meanwhile. A failure leaves the cursor where it was, so the rows are retried.
        Syncs run one at a time (the background loop and the lifespan's first one may meet).
        """
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> bool:
        started = time.monotonic()
        reader = self.reader
        if reader is None:
            self.failures += 1
            return False
        try:
            if self.probe is not None:
                await self.probe()
            epoch = self._revoked_at
            withheld = self.withheld
            replay = (
                epoch != self._validated_epoch or bool(withheld) or started - self._last_success > self.retention / 2
            )
            cursor = 0 if replay else self._cursor
            while True:
                rows = await reader.read_after(cursor, self.batch)
                if rows:
                    await self._apply(rows)
                    cursor = rows[-1][0]
                if len(rows) < self.batch:
                    break
        except Exception as exc:  # noqa: BLE001 - the reader's errors are the application's (e.g. the database's)
            return self._failed(exc)
        self._cursor = max(cursor, self._cursor) if not replay else cursor
        self.syncs += 1
        if withheld:  # each master connected before this sync started, and not again since, is fenced now
            self.withheld = {
                address: connect for address, connect in self.withheld.items() if withheld.get(address) != connect
            }
        if self._revoked_at == epoch:
            if self._validated_epoch != epoch and self.failures:
                logger.info("cache fence: caught up (epoch %d); caches trusted again", epoch)
            self._validated_epoch = epoch
            self._last_success = started
            self._set_trust(started + self.bound)
        await self._maybe_prune(reader, started)
        return self._revoked_at == epoch

    def _failed(self, exc: BaseException) -> bool:
        self.failures += 1
        if self.trusted():
            logger.warning(
                "cache fence: sync failed (%s: %s); caches untrusted within %.0f ms unless a sync succeeds",
                type(exc).__name__,
                exc,
                self.bound * 1000,
            )
        return False

    async def _apply(self, rows: Sequence[Invalidation]) -> None:
        by_namespace: dict[str, list[tuple[str, int, str]]] = {}
        for _, namespace, key, version, kind in rows:
            by_namespace.setdefault(namespace, []).append((key, version, kind))
        for namespace, items in by_namespace.items():
            cache = self._caches.get(namespace)
            if cache is not None:  # rows of caches this replica does not have concern it not
                await cache.apply_invalidations(items)

    async def _maybe_prune(self, reader: OutboxReader, now: float) -> None:
        if now - self._last_prune < min(60.0, self.retention / 4):
            return
        self._last_prune = now
        try:
            await reader.prune(self.retention)
        except Exception as exc:  # noqa: BLE001 - pruning is housekeeping: the next one retries
            logger.info("cache fence: pruning the outbox failed (%s)", type(exc).__name__)

    # -- background loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Run `sync` every `period` seconds in the background."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cache-fence")

    async def _run(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            self._wake.clear()  # a revoke from now on (during the sync too) calls for the next sync at once
            with contextlib.suppress(asyncio.TimeoutError):
                # A sync that hangs (a stalled backend or database) must not keep the next one from starting.
                async with asyncio.timeout(max(self.bound - self.period, self.period)):
                    await self.sync()
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(max(0.0, self.period - (time.monotonic() - started))):
                    await self._wake.wait()

    async def close(self) -> None:
        """Stop syncing; the caches are no longer trusted."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            task.cancel()
            await asyncio.wait({task})
        self._set_trust(0.0)
