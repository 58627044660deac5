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

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Agents beat every TTL / BEATS_PER_TTL seconds.
BEATS_PER_TTL = 3


def rate_scaled_ttl(base: float, nodes: int, max_beats_per_second: float) -> float:
    """The TTL that keeps ``nodes`` agents within ``max_beats_per_second`` heartbeats, never
    below ``base`` (whole seconds once scaled, so it changes rarely). As Nomad does with
    ``max_heartbeats_per_second``: a large cluster is told a longer TTL, so the heartbeat
    load on the servers stays bounded and a dead node is found later. 0: never scaled."""
    if max_beats_per_second <= 0:
        return base
    return max(base, float(math.ceil(BEATS_PER_TTL * nodes / max_beats_per_second)))


class Rhythm:
    """The TTL a server tells agents (scaled with the number of nodes) and the TTL its judge
    uses: the longest told within the last such TTL, so a node still beating at an older,
    slower rhythm is never judged by a shorter one. Thread-safe."""

    def __init__(self, base: float, max_beats_per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.max_beats_per_second = max_beats_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._current = base
        self._earlier: list[tuple[float, float]] = []  # (judged until, ttl) of older values

    def told(self, nodes: int) -> float:
        """The TTL to tell agents now, for a cluster of ``nodes`` nodes."""
        ttl = rate_scaled_ttl(self.base, nodes, self.max_beats_per_second)
        if ttl != self._current:
            with self._lock:
                if ttl != self._current:
                    now = self._clock()
                    self._earlier = [(u, t) for u, t in self._earlier if u > now]
                    self._earlier.append((now + self._current, self._current))
                    self._current = ttl
        return ttl

    def judging(self) -> float:
        """The TTL to judge silence by: the current one, or longer while an older, longer
        one may still be what some agents beat by."""
        now = self._clock()
        with self._lock:
            return max([self._current] + [t for until, t in self._earlier if until > now])


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
