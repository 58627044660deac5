"""Cron dispatch for periodic batch jobs: which child runs to launch now. Pure.

A periodic job is a template; each tick of its ``schedule`` launches a child job
``<id>-<unix time>`` with the same groups. Missed ticks are not replayed: only the latest
is launched. With ``prohibit_overlap`` a tick is skipped while an earlier child still runs.

A schedule is accepted only if it fires within ``HORIZON_YEARS`` (``0 0 31 2 *`` never does),
and the search for the next tick is bounded by the same horizon, so no stored schedule can
make dispatch loop or fail for every job: a periodic job whose schedule cannot be evaluated
is reported on its own (:func:`due_launches_checked`) and the others still launch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

FINISHED = ("complete", "failed", "dead")
HORIZON_YEARS = 5


def next_fire(schedule: str, after: float) -> float:
    """The first tick of ``schedule`` after ``after`` (unix seconds), found by a search
    bounded to ``HORIZON_YEARS``; ``ValueError`` when there is none within it."""
    try:
        ticks = croniter(schedule, datetime.fromtimestamp(after, UTC),
                         max_years_between_matches=HORIZON_YEARS)
        return float(ticks.get_next(float))
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise ValueError(f"{schedule!r} does not fire within {HORIZON_YEARS} years "
                         f"({exc})") from None


def previous_fire(schedule: str, before: float) -> float:
    """The last tick of ``schedule`` before ``before``, by the same bounded search."""
    try:
        ticks = croniter(schedule, datetime.fromtimestamp(before, UTC),
                         max_years_between_matches=HORIZON_YEARS)
        return float(ticks.get_prev(float))
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise ValueError(f"{schedule!r} does not fire within {HORIZON_YEARS} years "
                         f"({exc})") from None


def check_schedule(schedule: str, now: float) -> None:
    """``ValueError`` unless ``schedule`` is valid cron syntax that fires within the horizon."""
    if not croniter.is_valid(schedule):
        raise ValueError(f"invalid cron expression {schedule!r}")
    next_fire(schedule, now)


def child_id(parent_id: str, fire_time: float) -> str:
    suffix = f"-{int(fire_time)}"
    base = parent_id
    if len(base) + len(suffix) > 63:
        digest = hashlib.sha256(parent_id.encode()).hexdigest()[:8]
        base = f"{parent_id[: 63 - len(suffix) - 9]}-{digest}"
    return base + suffix


def due_launches(jobs: Mapping[str, Mapping[str, Any]], status_of: Callable[[str], str],
                 now: float) -> list[tuple[Mapping[str, Any], float, dict[str, Any]]]:
    """``(parent, fire_time, child spec)`` for every periodic job whose tick has come."""
    return due_launches_checked(jobs, status_of, now)[0]


def due_launches_checked(
    jobs: Mapping[str, Mapping[str, Any]], status_of: Callable[[str], str], now: float,
) -> tuple[list[tuple[Mapping[str, Any], float, dict[str, Any]]], dict[str, str]]:
    """The launches due, and the periodic jobs whose schedule failed (id → reason)."""
    children: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs.values():
        if job.get("parent"):
            children.setdefault(job["parent"], []).append(job)
    launches = []
    failed: dict[str, str] = {}
    for job in jobs.values():
        spec = job["spec"]
        if job["stopped"] or not spec.get("schedule"):
            continue
        try:
            launch = _due(job, children.get(job["id"], []), status_of, now)
        except ValueError as exc:
            failed[job["id"]] = str(exc)
            continue
        if launch is not None:
            launches.append(launch)
    return launches, failed


def _due(job: Mapping[str, Any], mine: list[Mapping[str, Any]],
         status_of: Callable[[str], str],
         now: float) -> tuple[Mapping[str, Any], float, dict[str, Any]] | None:
    spec = job["spec"]
    last = max([c.get("launch_time") or 0.0 for c in mine] + [job["submit_time"]])
    fire = next_fire(spec["schedule"], last)
    if fire > now:
        return None
    # Only the most recent missed tick: the last one at or before now, found backwards from
    # now (stepping through every missed tick of a per-second schedule is unbounded work).
    latest = max(fire, previous_fire(spec["schedule"], now))
    following = next_fire(spec["schedule"], latest)
    if following <= now:
        latest = following
    if spec.get("prohibit_overlap", True) and any(
            status_of(c["id"]) not in FINISHED for c in mine):
        return None
    child = {**spec, "id": child_id(job["id"], latest), "schedule": None}
    return job, latest, child
