"""Leader loop: a node that stops heart-beating for the TTL is marked down.

Heartbeats live in the leader's memory (``federation.server.liveness``); this loop commits
only the ready -> down transition, carrying the last sign of life it judged by, so a
registration committed in between wins. On gaining leadership it arms every node's timer at
``now + grace``: a new leader declares nobody dead for the time the cluster had no leader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from federation.errors import FederationError
from federation.ports import LeaderContext
from federation.server.liveness import Liveness, Rhythm, silent_nodes

log = logging.getLogger("federation.health")


def node_health_loop(
    context: LeaderContext,
    ttl: float | Rhythm,
    liveness: Liveness,
    grace: float | None = None,
) -> Callable[[threading.Event], None]:
    """``ttl``: a fixed TTL, or the server's ``Rhythm`` (the TTL scaled with the number of
    nodes, judged by the longest recently told)."""
    rhythm = ttl if isinstance(ttl, Rhythm) else Rhythm(ttl, 0)

    def current_ttl() -> float:
        rhythm.told(len(context.machine.nodes))
        return rhythm.judging()

    def loop(stop: threading.Event) -> None:
        first = current_ttl()
        liveness.arm(first, first if grace is None else grace)
        period = max(0.2, min(rhythm.base / 4, 2.0))
        rounds = 0
        while not stop.wait(period):
            state = context.machine
            ttl = current_ttl()
            found = silent_nodes(list(state.nodes.values()), liveness.seen(),
                                 liveness.armed_at, time.time(), ttl)
            for silent in found:
                node = silent.node
                if stop.is_set():
                    return
                # A heartbeat may have landed while the others were being marked down.
                fresh = liveness.last_seen(node["id"])
                if fresh is not None and time.time() - fresh <= ttl:
                    continue
                try:
                    result = context.commit_sync({
                        "type": "node.mark_down", "node_id": node["id"],
                        "last_heartbeat_seen": silent.last_seen,
                    })
                except FederationError as exc:
                    log.warning("could not mark node %s down: %s", node["name"], exc)
                    break
                except Exception:  # noqa: BLE001 - one node's failure is its own
                    log.exception("could not mark node %s down", node.get("id"))
                    continue
                if result.get("ok") and result["value"]["changed"]:
                    log.warning("node %s (%s) missed heartbeats for %.0fs: marked down",
                                node["name"], node["id"], ttl)
            rounds += 1
            if rounds % 100 == 0:
                liveness.forget(state.nodes.keys())
    return loop
