"""The Raft port: pysyncobj's TCP transport with bounded framing, an authentication deadline,
a cap on unauthenticated connections, a durability hook before every send, and two fixes to
how a leader's re-sent entries are handled.

* **Bounded framing** (``connection.py``): frames are length-checked before buffering, and
  the server binds exactly the configured host.
* **Authentication deadline and cap.** pysyncobj keeps a connection that never sends a valid
  first frame open for ever (its idle timeout is only checked when the socket has an event).
  Here an incoming connection that has not authenticated within ``auth_timeout`` seconds is
  closed on the next tick, at most ``max_unauthenticated`` wait at once (``per_host`` of them
  from one host), and every such rejection is logged (rate-limited) and counted.
* **Durable before sent.** ``before_send`` runs before any message leaves this node: the
  storage layer makes the journal durable there, so a follower's acknowledgement, a vote, or a
  leader's append never reports entries that a power cut could still take away.
* **Late acknowledgements.** A pysyncobj leader sends entries ahead of acknowledgements and
  moves a follower's next index to the end of what it sent; a late acknowledgement of an
  earlier send then moves that index back, and the next send repeats entries the follower
  holds. An acknowledgement never lowers the index here; a follower's reset still does.
* **Re-sent entries.** A pysyncobj follower given entries from an index below its last one
  truncates its log there and appends again, logging ``CRITICAL truncating already-applied
  log entries ... may have diverged`` even when the entries are the very ones it holds, and
  truncating entries beyond the message that it has already acknowledged. ``reconcile_append``
  compares the message's entries (index, term and content) with the follower's log first:
  identical entries are skipped, and only a real conflict reaches pysyncobj's truncation.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.transport import TCPTransport

from federation.raft.connection import BoundedConnection, BoundedServer, FrameLimits

log = logging.getLogger("federation.raft")

LOG_INTERVAL = 30.0

Entry = tuple[bytes, int, int]  # pysyncobj's journal entry: (command, index, term)


@dataclass(frozen=True)
class PortLimits:
    frames: FrameLimits = FrameLimits()
    auth_timeout: float = 3.0
    max_unauthenticated: int = 64
    max_unauthenticated_per_host: int = 16


def _peer_of(conn: BoundedConnection) -> str:
    fileno = conn.fileno()
    if fileno is None:
        return "unknown peer"
    try:
        dup = socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return "unknown peer"
    try:
        host, port = dup.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "unknown peer"
    finally:
        dup.close()


@dataclass(frozen=True)
class AppendPlan:
    """What to hand pysyncobj for one append_entries message, and an acknowledgement to send
    in its place when pysyncobj must not see the entries at all."""

    message: dict[str, Any]
    ack_next_index: int | None = None


def reconcile_append(message: dict[str, Any], log_entries: Sequence[Entry]) -> AppendPlan:
    """Decide how a follower holding ``log_entries`` takes a leader's append_entries.

    Pure: it reads the log, changes nothing. Entries the follower already holds with the same
    index, term and content are dropped from the message; if they cover everything the
    follower holds past ``prevLogIdx`` the rest is appended after its last entry (no
    truncation). If the message is shorter than what the follower holds and all of it matches,
    nothing may be truncated: the message becomes a heartbeat (commit index capped at what
    the message vouched for) and the caller acknowledges up to the last matching entry.
    Anything else (a conflict, a gap, a snapshot chunk) goes to pysyncobj unchanged.
    """
    entries = message.get("entries") or []
    if "prevLogIdx" not in message or "transmission" in message or not log_entries:
        return AppendPlan(message)
    prev_index = message["prevLogIdx"]
    first_index = log_entries[0][1]
    last_index = log_entries[-1][1]
    if prev_index is None or prev_index >= last_index or prev_index < first_index:
        return AppendPlan(message)
    if log_entries[prev_index - first_index][2] != message["prevLogTerm"]:
        return AppendPlan(message)
    held = log_entries[prev_index + 1 - first_index:]
    matching = 0
    for sent, ours in zip(entries, held, strict=False):
        if sent[1] != ours[1] or sent[2] != ours[2] or bytes(sent[0]) != bytes(ours[0]):
            return AppendPlan(message)  # a real conflict: pysyncobj truncates, rightly
        matching += 1
    if matching == len(held):
        rest = list(entries[matching:])
        return AppendPlan({**message, "prevLogIdx": last_index, "prevLogTerm": log_entries[-1][2],
                           "entries": rest})
    verified = prev_index + matching
    heartbeat = {k: v for k, v in message.items()
                 if k not in ("prevLogIdx", "prevLogTerm", "entries")}
    heartbeat["commit_index"] = min(message["commit_index"], verified)
    return AppendPlan(heartbeat, ack_next_index=verified + 1)


class AuditedTransport(TCPTransport):
    """TCPTransport with the bounded Raft port described in the module docstring.

    ``RaftNode`` subclasses it per node and sets the class attributes below."""

    on_rejected: Callable[[str], None] | None = None
    before_send: Callable[[], None] | None = None
    log_entries: Callable[[], Sequence[Entry] | None] | None = None
    port_limits: PortLimits = PortLimits()

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:  # noqa: N803
        self._pending_peers: dict[int, str] = {}
        self._last_logged: dict[str, tuple[float, int]] = {}
        super().__init__(syncObj, selfNode, otherNodes)

    # -- connections ---------------------------------------------------------------------
    def _new_connection(self, sock: socket.socket | None = None) -> BoundedConnection:
        conf = self._syncObj.conf
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, conf.sendBufferSize)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, conf.recvBufferSize)
        return BoundedConnection(
            self._syncObj._poller, limits=self.port_limits.frames, timeout=conf.connectionTimeout,
            send_buffer_size=conf.sendBufferSize, recv_buffer_size=conf.recvBufferSize,
            keepalive=conf.tcp_keepalive, sock=sock)

    def _createServer(self) -> None:  # noqa: N802
        """Listen on exactly the host of this node's address (pysyncobj used 0.0.0.0)."""
        address = self._syncObj.conf.bindAddress or self._selfNode.address
        host, port = address.rsplit(":", 1)
        host = host.strip("[]")
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            host = globalDnsResolver().resolve(host)
        self._server = BoundedServer(self._syncObj._poller, host, int(port),
                                     self._onNewIncomingConnection, self._new_connection)

    def addNode(self, node: Any) -> None:  # noqa: N802
        super().addNode(node)
        old = self._connections.get(node)
        if old is None:
            return
        # pysyncobj created its own TcpConnection for an outgoing peer: replace it, same wiring.
        conn = self._new_connection()
        conn.encryptor = self._syncObj.encryptor
        conn.setOnConnectedCallback(lambda: self._onOutgoingConnected(conn))
        conn.setOnMessageReceivedCallback(lambda message: self._onMessageReceived(node, message))
        conn.setOnDisconnectedCallback(lambda: self._onDisconnected(conn))
        self._connections[node] = conn

    def _onNewIncomingConnection(self, conn: Any) -> None:  # noqa: N802
        peer = _peer_of(conn)
        host = peer.rsplit(":", 1)[0]
        limits = self.port_limits
        waiting = [self._pending_peers.get(id(c), "") for c in self._unknownConnections]
        from_host = sum(1 for p in waiting if p.rsplit(":", 1)[0] == host)
        if len(waiting) >= limits.max_unauthenticated or \
                from_host >= limits.max_unauthenticated_per_host:
            conn.disconnect()
            self._report(peer, "too many connections waiting to authenticate")
            return
        self._pending_peers[id(conn)] = peer
        super()._onNewIncomingConnection(conn)

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # noqa: N802
        super()._onIncomingMessageReceived(conn, message)
        if conn not in self._unknownConnections:
            self._pending_peers.pop(id(conn), None)

    def _onDisconnected(self, conn: Any) -> None:  # noqa: N802
        never_authenticated = conn in self._unknownConnections
        peer = self._pending_peers.pop(id(conn), "unknown peer")
        if never_authenticated:
            self._report(peer, "it did not authenticate (wrong or missing cluster secret?)")
        super()._onDisconnected(conn)

    def _onTick(self) -> None:  # noqa: N802
        super()._onTick()
        deadline = time.monotonic() - self.port_limits.auth_timeout
        for conn in [c for c in self._unknownConnections if c.opened_at < deadline]:
            conn.disconnect()  # reported by _onDisconnected

    def _report(self, peer: str, why: str) -> None:
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
        log.warning("rejected a Raft connection from %s: %s%s", peer, why, more)

    # -- messages ------------------------------------------------------------------------
    def send(self, node: Any, message: Any) -> bool:
        if self.before_send is not None:
            self.before_send()
        return bool(super().send(node, message))

    def _onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries" and self.log_entries is not None \
                and message.get("term", -1) >= self._syncObj.raftCurrentTerm:
            entries = self.log_entries()
            if entries is not None:
                plan = reconcile_append(message, entries)
                super()._onMessageReceived(node, plan.message)
                if plan.ack_next_index is not None:
                    self.send(node, {"type": "next_node_idx", "next_node_idx": plan.ack_next_index,
                                     "reset": False, "success": True})
                return
        acknowledged = kind == "next_node_idx" and message.get("success") \
            and not message.get("reset")
        if not acknowledged:
            super()._onMessageReceived(node, message)
            return
        next_index = getattr(self._syncObj, "_SyncObj__raftNextIndex", None)
        before = next_index.get(node) if isinstance(next_index, dict) else None
        super()._onMessageReceived(node, message)
        if before is not None and next_index is not None and next_index.get(node, before) < before:
            next_index[node] = before
