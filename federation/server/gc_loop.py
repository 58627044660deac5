"""Leader loop: garbage-collect finished work by the configured policy.

The decision of what goes is the state machine's (``federation.state.gc``); the leader only
looks, with the same pure function, whether anything would go, and then commits one ``gc``
command carrying the time and the policy, so every server removes the same records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from federation.errors import FederationError
from federation.ports import LeaderContext
from federation.server.config import GcSettings
from federation.state import gc

log = logging.getLogger("federation.gc")


def gc_loop(context: LeaderContext, settings: GcSettings) -> Callable[[threading.Event], None]:
    def loop(stop: threading.Event) -> None:
        if settings.interval <= 0:
            return
        while not stop.wait(settings.interval):
            now = context.now()
            try:
                jobs, allocs = gc.plan(context.machine, now, settings.policy)
                if not jobs and not allocs:
                    continue
                result = context.commit_sync(settings.policy.command(now))
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
