"""The leader-only loops every master runs while it leads, in one list.

Each entry is ``(name, factory)``; ``factory(master)`` returns a loop function
``loop(stop: threading.Event) -> None`` (see ``federation.server.leader``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from federation.autoscaler.executor import executor_loop
from federation.server.node_health import node_health_loop

if TYPE_CHECKING:
    from federation.server.master import Master

LoopFactory = Callable[["Master"], Callable[[threading.Event], None]]


def _node_health(master: Master) -> Callable[[threading.Event], None]:
    return node_health_loop(lambda: master.machine, master.commit_sync,
                            master.config.heartbeat_ttl)


def _gc(master: Master) -> Callable[[threading.Event], None]:
    from federation.server.gc_loop import gc_loop

    return gc_loop(lambda: master.machine, master.commit_sync, master.config.gc)


def _scheduler(master: Master) -> Callable[[threading.Event], None]:
    from federation.server.scheduling import Scheduler

    return Scheduler(master).run


def _member_clusters(master: Master) -> Callable[[threading.Event], None]:
    from federation.members.manager import member_clusters_loop

    return member_clusters_loop(master)


LEADER_LOOPS: list[tuple[str, LoopFactory]] = [
    ("node-health", _node_health),
    ("autoscaler", executor_loop),
    ("scheduler", _scheduler),
    ("gc", _gc),
    ("member-clusters", _member_clusters),
]
