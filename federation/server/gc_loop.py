"""Leader loop: garbage-collect finished work by the configured policy.

The decision of what goes is the state machine's (``federation.state.gc``); the leader only
looks, with the same pure function, whether anything would go, and then commits one ``gc``
command carrying the time and the policy, so every server removes the same records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from federation.errors import FederationError
from federation.server.config import GcSettings
from federation.state import gc
from federation.state.machine import StateMachine

log = logging.getLogger("federation.gc")


def gc_loop(
    machine: Callable[[], StateMachine],
    commit: Callable[[dict[str, Any]], dict[str, Any]],
    settings: GcSettings,
) -> Callable[[threading.Event], None]:
    def loop(stop: threading.Event) -> None:
        if settings.interval <= 0:
            return
        while not stop.wait(settings.interval):
            now = time.time()
            try:
                jobs, allocs = gc.plan(machine(), now, settings.policy)
                if not jobs and not allocs:
                    continue
                result = commit(settings.policy.command(now))
            except FederationError as exc:
                log.warning("garbage collection not committed: %s", exc)
                continue
            except Exception:  # noqa: BLE001 - the next round may do better
                log.exception("garbage collection failed")
                continue
            if result.get("ok"):
                value = result["value"]
                log.info("garbage collection removed %d job(s) and %d allocation(s)",
                         value["jobs"], value["allocations"])
            else:
                log.warning("garbage collection rejected: %s", result.get("error"))
    return loop
