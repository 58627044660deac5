"""A pysyncobj TCP transport that reports connections which never authenticate, and keeps
the leader from re-sending entries a follower already has.

pysyncobj silently drops a connection whose first frame fails to decrypt. With an
authenticated cluster that is exactly what a peer with the wrong secret, or anyone probing the
Raft port, looks like, and operators need to see it: this transport logs and counts them.

A pysyncobj leader sends entries ahead of acknowledgements and moves a follower's next index
to the end of what it sent. A late acknowledgement of an earlier send then moves that index
back, so the next send repeats entries the follower holds; the follower truncates its log
there (logging ``truncating already-applied log entries``) and appends the same entries
again. Under a stream of large plan entries that doubled the bytes sent. An acknowledgement
never lowers the index here; a follower that really lacks entries answers with a reset,
which still does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pysyncobj.transport import TCPTransport

log = logging.getLogger("federation.raft")

LOG_INTERVAL = 30.0


def _peer_of(conn: Any) -> str:
    try:
        dup = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return "unknown peer"
    try:
        host, port = dup.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "unknown peer"
    finally:
        dup.close()


class AuditedTransport(TCPTransport):
    """TCPTransport that logs incoming connections closed before they authenticated."""

    on_rejected: Callable[[str], None] | None = None

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        self._pending_peers: dict[int, str] = {}
        self._pending_lock = threading.Lock()
        self._last_logged: dict[str, tuple[float, int]] = {}
        super().__init__(syncObj, selfNode, otherNodes)

    def _report(self, peer: str) -> None:
        """Log a rejection, at most once per host every LOG_INTERVAL seconds (a peer with the
        wrong secret redials several times a second)."""
        if self.on_rejected is not None:
            self.on_rejected(peer)
        host = peer.rsplit(":", 1)[0]
        now = time.monotonic()
        last, suppressed = self._last_logged.get(host, (float("-inf"), 0))
        if now - last < LOG_INTERVAL:
            self._last_logged[host] = (last, suppressed + 1)
            return
        self._last_logged[host] = (now, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning(
            "rejected a Raft connection from %s: it did not authenticate "
            "(wrong or missing cluster secret?)%s", peer, more,
        )

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        acknowledged = (isinstance(message, dict) and message.get("type") == "next_node_idx"
                        and message.get("success") and not message.get("reset"))
        if not acknowledged:
            super()._onMessageReceived(node, message)
            return
        next_index = getattr(self._syncObj, "_SyncObj__raftNextIndex", None)
        before = next_index.get(node) if isinstance(next_index, dict) else None
        super()._onMessageReceived(node, message)
        if before is not None and next_index is not None and next_index.get(node, before) < before:
            next_index[node] = before

    def _onNewIncomingConnection(self, conn: Any) -> None:  # noqa: N802
        with self._pending_lock:
            self._pending_peers[id(conn)] = _peer_of(conn)
        super()._onNewIncomingConnection(conn)

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # noqa: N802
        super()._onIncomingMessageReceived(conn, message)
        if conn not in self._unknownConnections:
            with self._pending_lock:
                self._pending_peers.pop(id(conn), None)

    def _onDisconnected(self, conn: Any) -> None:  # noqa: N802
        never_authenticated = conn in self._unknownConnections
        with self._pending_lock:
            peer = self._pending_peers.pop(id(conn), "unknown peer")
        if never_authenticated:
            self._report(peer)
        super()._onDisconnected(conn)
