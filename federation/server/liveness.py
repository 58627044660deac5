"""Node liveness in a server's memory: when each node last heart-beat, never in the Raft log.

Every server records the heartbeats it receives (a follower also forwards them to the leader);
only the leader judges. A heartbeat is not a change of cluster state, so it is not committed:
the log holds the transitions alone (registration, ready -> down, down -> ready).

The decision is a pure function of the nodes, the times seen and the time the judge armed
its timers: a new leader arms every timer at ``now + grace`` when it gains leadership, so
nobody is declared dead for the time the cluster had no leader, or for beats the old leader
received and this one did not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Silent:
    """A node the judge found silent for longer than the TTL, and the last sign of life
    the decision rests on (the ``last_heartbeat_seen`` of ``node.mark_down``)."""

    node: Mapping[str, Any]
    last_seen: float


def silent_nodes(nodes: Iterable[Mapping[str, Any]], seen: Mapping[str, float],
                 armed_at: float, now: float, ttl: float) -> list[Silent]:
    """Ready nodes with no sign of life for more than ``ttl``.

    A node's last sign of life is the latest of: a heartbeat this server saw (``seen``), its
    last committed transition (registration or coming back, ``last_heartbeat`` in the
    state), and ``armed_at`` (when this server started judging, plus any grace beyond one
    TTL)."""
    out = []
    for node in nodes:
        if node.get("status") != "ready":
            continue
        committed = node.get("last_heartbeat")
        last = armed_at
        if isinstance(committed, int | float) and not isinstance(committed, bool):
            last = max(last, float(committed))
        last = max(last, seen.get(node["id"], last))
        if now - last > ttl:
            out.append(Silent(node, last))
    return out


class Liveness:
    """The heartbeats one server has received: node id -> wall-clock time of the last one.

    Thread-safe: HTTP handlers record, the leader's health loop reads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self.armed_at = 0.0
        self.beats = 0

    def beat(self, node_id: str) -> float:
        now = self._clock()
        with self._lock:
            self._seen[node_id] = now
            self.beats += 1
        return now

    def record(self, beats: dict[str, float]) -> None:
        """Heartbeats another server received (relayed): node id -> time of the beat."""
        with self._lock:
            seen = self._seen
            for node_id, at in beats.items():
                if seen.get(node_id, 0.0) < at:
                    seen[node_id] = at
            self.beats += len(beats)

    def last_seen(self, node_id: str) -> float | None:
        return self._seen.get(node_id)

    def seen(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seen)

    def arm(self, ttl: float, grace: float) -> float:
        """Start judging: no node may be found silent before ``now + grace``."""
        self.armed_at = self._clock() + grace - ttl
        return self.armed_at

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the nodes no longer known (removed from the state)."""
        wanted = set(keep)
        with self._lock:
            for node_id in [n for n in self._seen if n not in wanted]:
                del self._seen[node_id]
