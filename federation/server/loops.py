"""The leader-only loops every master runs while it leads, in one list.

Each entry is ``(name, factory)``; ``factory(master)`` returns a loop function
``loop(stop: threading.Event) -> None`` (see ``federation.server.leader``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from federation.server.node_health import node_health_loop

if TYPE_CHECKING:
    from federation.server.master import Master

LoopFactory = Callable[["Master"], Callable[[threading.Event], None]]


def _node_health(master: Master) -> Callable[[threading.Event], None]:
    return node_health_loop(lambda: master.machine, master.commit_sync,
                            master.config.heartbeat_ttl)


LEADER_LOOPS: list[tuple[str, LoopFactory]] = [
    ("node-health", _node_health),
]
