"""Leader loop: a node that stops heart-beating for the TTL is marked down.

The decision is taken from committed state only, and the command carries the heartbeat time
the leader saw, so a heartbeat that lands in between wins. A new leader first waits one TTL,
so nodes are not declared dead for the time the cluster had no leader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from federation.errors import FederationError
from federation.ports import LeaderContext
from federation.state.machine import StateMachine

log = logging.getLogger("federation.health")


def silent_nodes(machine: StateMachine, now: float, ttl: float) -> list[dict[str, Any]]:
    """Ready nodes whose last committed heartbeat is older than the TTL."""
    return [
        node for node in list(machine.nodes.values())
        if node.get("status") == "ready"
        and isinstance(node.get("last_heartbeat"), int | float)
        and now - node["last_heartbeat"] > ttl
    ]


def node_health_loop(context: LeaderContext, ttl: float) -> Callable[[threading.Event], None]:
    def loop(stop: threading.Event) -> None:
        if stop.wait(ttl):
            return
        period = max(0.2, min(ttl / 4, 2.0))
        while not stop.is_set():
            for node in silent_nodes(context.machine, context.now(), ttl):
                try:
                    result = context.commit_sync({
                        "type": "node.mark_down", "node_id": node["id"],
                        "last_heartbeat_seen": node["last_heartbeat"],
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
            stop.wait(period)
    return loop
