"""How a job that is neither stopped nor finished is doing: ``pending``, ``running`` or
``degraded``, from its allocations. Pure.

- ``running``: every group has ``count`` copies up (running, and not failing its health
  check; a batch copy that completed counts as up) or starting for the first time.
- ``degraded``: something is wrong while the job should be running: a copy failed, exited,
  failed its health check or is being restarted in place, a replacement of a failed copy is
  waiting out its reschedule delay or has not yet come up (healthy, when a check is
  declared), or some copies are up but a group is short of its ``count``.
- ``pending``: nothing is up and nothing failed yet (placing, starting, or waiting for
  capacity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ENDED = ("complete", "failed", "lost", "stopped")


def _streak(alloc: Mapping[str, Any]) -> int:
    value = alloc.get("failure_streak", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _restarts(alloc: Mapping[str, Any]) -> int:
    value = alloc.get("restarts", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def troubled(alloc: Mapping[str, Any], batch: bool, checked: bool) -> bool:
    """A copy meant to run that is failing, or that replaces a failed one and is not up yet."""
    status = alloc.get("client_status")
    if status in ENDED:
        return not (batch and status == "complete")
    if alloc.get("healthy") is False:
        return True
    if status == "pending":
        return _restarts(alloc) > 0 or _streak(alloc) > 0
    # Running: a replacement of a failed copy is on trial until its check passes.
    return checked and _streak(alloc) > 0 and alloc.get("healthy") is not True


def live_status(groups: Iterable[Mapping[str, Any]], allocations: Iterable[Mapping[str, Any]],
                batch: bool) -> str:
    """``pending`` | ``running`` | ``degraded`` for ``groups`` (a spec's) given the job's
    allocations (those told to stop are ignored)."""
    wanted = [a for a in allocations if a.get("desired_status") == "run"]
    any_up = any_troubled = any_short = False
    for group in groups:
        checked = not batch and bool((group.get("task") or {}).get("health"))
        up = starting = 0
        for alloc in wanted:
            if alloc.get("group") != group.get("name"):
                continue
            if troubled(alloc, batch, checked):
                any_troubled = True
            elif alloc.get("client_status") in ("running", "complete"):
                up += 1
            elif alloc.get("client_status") == "pending":
                starting += 1
        any_up = any_up or up > 0
        any_short = any_short or up + starting < int(group.get("count", 1))
    if any_troubled or (any_up and any_short):
        return "degraded"
    return "running" if any_up else "pending"
