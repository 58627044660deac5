"""When a failed allocation may be replaced: the reschedule delay, doubled per failure in a
row and capped, as Nomad's exponential reschedule delay. Pure.

Each allocation carries ``failure_streak``: how many copies of its instance failed in a row
before it was placed. A copy that fails is replaced ``delay * 2**streak`` seconds (at most
``max_delay``) after the servers learnt of the failure (``ended_time``, stamped by the state
machine from the command's time, so every server agrees). A copy that ran at least
``max_delay`` before failing is not part of a streak: it is replaced after ``delay``. A copy
lost with its node, or stopped by the system, used no attempt: it is replaced at once and
leaves the streak as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from federation.specs.duration import parse_duration

DEFAULT_DELAY = 5.0
DEFAULT_MAX_DELAY = 300.0
MAX_EXPONENT = 30  # 2**30 times any delay is past any cap: no huge floats


def _seconds(value: Any, default: float) -> float:
    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def delays(group: Mapping[str, Any]) -> tuple[float, float]:
    """``(delay, max_delay)`` in seconds from the group's ``reschedule`` policy."""
    policy = group.get("reschedule") or {}
    delay = _seconds(policy.get("delay"), DEFAULT_DELAY)
    return delay, max(delay, _seconds(policy.get("max_delay"), DEFAULT_MAX_DELAY))


def streak_of(alloc: Mapping[str, Any]) -> int:
    value = alloc.get("failure_streak", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def ran_stably(alloc: Mapping[str, Any], max_delay: float) -> bool:
    """True when the copy's last run lasted at least ``max_delay`` (agent's clock, both ends)."""
    started, finished = _number(alloc.get("started_at")), _number(alloc.get("finished_at"))
    return started is not None and finished is not None and finished - started >= max_delay


def counts_as_failure(alloc: Mapping[str, Any]) -> bool:
    """A copy that failed or exited on its own (not lost with its node, not stopped)."""
    return alloc.get("client_status") in ("failed", "complete")


def failures_before(group: Mapping[str, Any], failed: Mapping[str, Any]) -> int:
    """The streak ``failed`` ends: 0 when it ran stably, its ``failure_streak`` otherwise."""
    _, max_delay = delays(group)
    return 0 if ran_stably(failed, max_delay) else streak_of(failed)


def replacement_delay(group: Mapping[str, Any], failed: Mapping[str, Any]) -> float:
    """Seconds between ``failed`` ending and its replacement being placed."""
    delay, max_delay = delays(group)
    exponent = min(failures_before(group, failed), MAX_EXPONENT)
    return min(delay * (2 ** exponent), max_delay)


def replace_at(group: Mapping[str, Any], failed: Mapping[str, Any]) -> float | None:
    """When ``failed`` may be replaced (servers' clock); None when at once (it was lost or
    stopped, or ended before the servers stamped end times)."""
    if not counts_as_failure(failed):
        return None
    ended = _number(failed.get("ended_time"))
    if ended is None:
        return None
    return ended + replacement_delay(group, failed)


def next_streak(group: Mapping[str, Any], previous: Mapping[str, Any] | None) -> int:
    """The ``failure_streak`` of the copy that replaces ``previous``."""
    if previous is None:
        return 0
    if not counts_as_failure(previous):
        return streak_of(previous)
    return min(failures_before(group, previous), MAX_EXPONENT) + 1


def waiting(groups: Sequence[Mapping[str, Any]], allocations: Sequence[Mapping[str, Any]]
            ) -> list[dict[str, Any]]:
    """The failed copies still meant to run, each with when its replacement is due (what
    ``job status`` shows while a job is degraded)."""
    by_name = {g.get("name"): g for g in groups}
    out = []
    for alloc in allocations:
        group = by_name.get(alloc.get("group"))
        if group is None or alloc.get("desired_status") != "run":
            continue
        due = replace_at(group, alloc)
        if due is not None and alloc.get("client_status") != "complete":
            out.append({"alloc_id": alloc.get("id"), "group": alloc.get("group"),
                        "index": alloc.get("index", 0), "replace_at": due,
                        "delay": replacement_delay(group, alloc)})
    return sorted(out, key=lambda w: (w["replace_at"], str(w["alloc_id"])))
