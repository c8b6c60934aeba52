"""Which Redis server answers at each cluster address: a new one (restarted, or a promoted replica) revokes the fence.

On a standalone server or under Sentinel every read goes over one connection, and a new connection is a new server
as far as the consistency fence can tell (`MultiplexedConnection.on_connect`). A cluster client opens connections
to many nodes, and more of them whenever traffic grows, so "a new connection" says nothing there. What does:
a server's identity, its `run_id` (new on every start) and `master_replid` (new on every promotion: a replica that
takes over a dead master's slots may lack the writes and markers the master had not replicated yet).

`ClusterIdentities.install` makes every connection the cluster client opens ask its server who it is, before the
connection carries any command: an identity not seen before at that address revokes the fence (`CacheFence.revoke`)
then and there, so no reply from an unfenced server is trusted, and the fence's next sync re-applies the whole
retained outbox onto it. `probe` (the fence's, every sync) asks every master again over pooled connections, which
catches an identity that changed under an open connection, and refreshes the slot map when a master did not
answer, so a promotion is fenced within a sync period even if no reader meets it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from redis.asyncio import RedisCluster
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.connection import Connection

__all__ = ("ClusterIdentities",)

_INFO = ("INFO", "server", "replication")


def _identity(info: Mapping[str, Any]) -> str:
    """`run_id/master_replid` from an `INFO server replication` reply (parsed)."""
    return f"{info.get('run_id', '?')}/{info.get('master_replid', '?')}"


def _parse(reply: bytes) -> dict[str, str]:
    """The `field:value` lines of a raw `INFO` reply."""
    return dict(line.split(":", 1) for line in reply.decode().splitlines() if ":" in line)


class ClusterIdentities:
    """The identity of the server last seen at each `host:port`; a change calls `revoke`."""

    __slots__ = ("_known", "_revoke", "changes", "timeout")

    def __init__(self, revoke: Callable[[], None], *, timeout: float = 0.5) -> None:
        """Call `revoke` whenever a server new to an address answers there.

        Args:
            revoke: The fence's `revoke`.
            timeout: Seconds `probe` waits for each master.
        """
        self._revoke = revoke
        self._known: dict[str, str] = {}
        self.timeout = timeout
        self.changes = 0
        """Identities seen for the first time at their address (start-up counts one per master)."""

    def observe(self, address: str, identity: str) -> None:
        """Record who answers at `address`; revoke the fence if it is not who answered there before."""
        if self._known.get(address) != identity:
            self._known[address] = identity
            self.changes += 1
            self._revoke()

    def install(self, client: RedisCluster) -> None:
        """Check the identity on every connection `client` opens, to the nodes it knows and to those it finds later.

        redis-py runs a connection's `redis_connect_func` instead of its own handshake, right after connecting and
        before the connection is handed out; nodes take their connection options from the node manager's.
        """

        async def identify(connection: Connection) -> None:
            await connection.on_connect()
            await connection.send_command(*_INFO)
            reply = cast("bytes", await connection.read_response())
            self.observe(f"{connection.host}:{connection.port}", _identity(_parse(reply)))

        manager = client.nodes_manager
        manager.connection_kwargs["redis_connect_func"] = identify
        for node in (*manager.startup_nodes.values(), *manager.nodes_cache.values()):
            node.connection_kwargs["redis_connect_func"] = identify

    def probe_for(self, client: RedisCluster) -> Callable[[], Any]:
        """The fence's probe on `client`: ask every master who it is; refresh the slot map if one did not answer."""

        async def ask(node: ClusterNode) -> bool:
            try:
                async with asyncio.timeout(self.timeout):
                    info = await node.execute_command(*_INFO)
            except Exception:  # noqa: BLE001 - a dead master serves nothing: its successor is fenced when it answers
                return False
            self.observe(node.name, _identity(info))  # redis-py parses INFO into a dict
            return True

        async def probe() -> None:
            await client.initialize()  # a no-op once the client knows the slots
            answered = await asyncio.gather(*(ask(node) for node in client.get_primaries()))
            if not all(answered):
                with contextlib.suppress(Exception):  # the next probe tries again
                    async with asyncio.timeout(self.timeout * 2):
                        await client.nodes_manager.initialize()

        return probe
