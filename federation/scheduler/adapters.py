"""Conversions from the project's plain records (API node dicts, job specs) to scheduler types.

The state machine and the API speak JSON-shaped dicts; the scheduler plans with the
dataclasses of :mod:`federation.scheduler.types`. These functions are the only place the two
meet, so a change of record shape is fixed here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.errors import ValidationError
from federation.model import node_view
from federation.scheduler.types import (
    Constraint,
    Resources,
    Spread,
    TaskGroupDemand,
)

__all__ = ["node_view", "task_groups"]


def _spread(value: Any) -> Spread | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return Spread(value)
    if isinstance(value, list):
        value = value[0]
    if isinstance(value, Mapping):
        targets = value.get("targets") or {}
        if isinstance(targets, list):  # [{value, percent}]
            targets = {str(t["value"]): float(t["percent"]) for t in targets}
        return Spread(
            str(value.get("attribute", "")),
            {str(k): float(v) for k, v in targets.items()},
            float(value.get("weight", 1.0)),
        )
    raise ValidationError("spread is an attribute name or {attribute, targets}", field="spread")


def task_groups(spec: Mapping[str, Any]) -> list[TaskGroupDemand]:
    """The groups of a job spec (see the job spec in the design) as demands."""
    job_id = str(spec.get("id", ""))
    out = []
    for group in spec.get("groups") or []:
        max_per_node = group.get("max_per_node")
        out.append(
            TaskGroupDemand(
                job_id=job_id,
                name=str(group.get("name", "")),
                count=int(group.get("count", 1)),
                resources=Resources.from_spec(group.get("resources") or {}),
                constraints=tuple(Constraint.from_spec(c) for c in group.get("constraints") or []),
                spread=_spread(group.get("spread")),
                distinct_hosts=bool(group.get("distinct_hosts", False)),
                max_per_node=None if max_per_node in (None, -1) else int(max_per_node),
                priority=int(spec.get("priority", 50)),
                gang=bool(group.get("gang", False)),
                job_type=str(spec.get("type", "service")),
                queue=str(spec.get("queue", "default")),
                algorithm=str(group.get("algorithm", spec.get("algorithm", "binpack"))),
            )
        )
    return out
