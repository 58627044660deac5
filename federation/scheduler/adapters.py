"""Conversions from the project's plain records (API node dicts, job specs) to scheduler types.

The state machine and the API speak JSON-shaped dicts; the scheduler plans with the
dataclasses of :mod:`federation.scheduler.types`. These functions are the only place the two
meet, so a change of record shape is fixed here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from federation.errors import ValidationError
from federation.scheduler.fragmentation import TaskShape, WorkloadProfile, build_profile
from federation.scheduler.types import (
    MILLI_PER_GPU,
    Constraint,
    NodeView,
    Resources,
    Spread,
    TaskGroupDemand,
)


def node_view(record: Mapping[str, Any]) -> NodeView:
    """A :class:`NodeView` from a node record as the API returns it (``GET /v1/nodes/{id}``).

    Optional fields: ``allocated`` (same keys as ``capacity``), ``gpu_used_milli`` (one entry
    per GPU), ``instance_type``, ``price_per_hour``, ``draining``, ``status``.
    """
    capacity = Resources.from_spec(record.get("capacity") or {})
    allocated_spec = dict(record.get("allocated") or {})
    used = tuple(int(x) for x in (record.get("gpu_used_milli") or ()))
    if used:
        # The per-device list is the truth for GPUs; the total only says the same again.
        allocated_spec = {**allocated_spec, "gpu": 0, "gpu_milli": 0}
    return NodeView(
        id=str(record.get("id") or record.get("name") or ""),
        capacity=capacity,
        allocated=Resources.from_spec(allocated_spec),
        gpu_used_milli=used,
        provider=str(record.get("provider") or ""),
        pool=str(record.get("pool") or ""),
        region=str(record.get("region") or ""),
        zone=str(record.get("zone") or ""),
        rack=str(record.get("rack") or ""),
        instance_type=str(record.get("instance_type") or ""),
        labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
        status=str(record.get("status") or "ready"),
        draining=bool(record.get("draining", False)),
        price_per_hour=float(record.get("price_per_hour") or 0.0),
    )


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


def workload_profile(demands: Iterable[Resources]) -> WorkloadProfile:
    """The GPU fragmentation profile of a workload: the shapes of its instances, e.g. the
    running allocations plus the pending groups (one entry per instance)."""
    shapes = []
    for res in demands:
        if res.gpu_share_milli:
            shapes.append(TaskShape(res.cpu_milli, 1, res.gpu_share_milli))
        elif res.gpu:
            shapes.append(TaskShape(res.cpu_milli, res.gpu, MILLI_PER_GPU))
        else:
            shapes.append(TaskShape(res.cpu_milli))
    return build_profile(shapes)
