"""Cron dispatch for periodic batch jobs: which child runs to launch now. Pure.

A periodic job is a template; each tick of its ``schedule`` launches a child job
``<id>-<unix time>`` with the same groups. Missed ticks are not replayed: only the latest
is launched. With ``prohibit_overlap`` a tick is skipped while an earlier child still runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

FINISHED = ("complete", "failed", "dead")


def child_id(parent_id: str, fire_time: float) -> str:
    # A job in another namespace is keyed ``namespace/id``: the 63-character limit is the
    # id's, and the child stays in its parent's namespace.
    prefix, sep, local = parent_id.rpartition("/")
    suffix = f"-{int(fire_time)}"
    base = local
    if len(base) + len(suffix) > 63:
        digest = hashlib.sha256(local.encode()).hexdigest()[:8]
        base = f"{local[: 63 - len(suffix) - 9]}-{digest}"
    return prefix + sep + base + suffix


def due_launches(jobs: Mapping[str, Mapping[str, Any]], status_of: Callable[[str], str],
                 now: float) -> list[tuple[Mapping[str, Any], float, dict[str, Any]]]:
    """``(parent, fire_time, child spec)`` for every periodic job whose tick has come."""
    children: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs.values():
        if job.get("parent"):
            children.setdefault(job["parent"], []).append(job)
    launches = []
    for job in jobs.values():
        spec = job["spec"]
        if job["stopped"] or not spec.get("schedule"):
            continue
        mine = children.get(job["id"], [])
        last = max([c.get("launch_time") or 0.0 for c in mine] + [job["submit_time"]])
        base = datetime.fromtimestamp(last, UTC)
        ticks = croniter(spec["schedule"], base)
        fire = ticks.get_next(float)
        if fire > now:
            continue
        while True:  # only the most recent missed tick
            following = ticks.get_next(float)
            if following > now:
                break
            fire = following
        if spec.get("prohibit_overlap", True) and any(
                status_of(c["id"]) not in FINISHED for c in mine):
            continue
        child = {**spec, "id": child_id(job["id"], fire), "schedule": None}
        launches.append((job, fire, child))
    return launches
