"""Feasibility: which nodes can take one more instance of a group, and why the others cannot.

Each node goes through the model's one fit check (:func:`federation.model.fit.rejection`):
node status, constraints (cached per class of identical nodes), per-group limits
(``distinct_hosts``, ``max_per_node``), then resources including GPU devices and shares.
Each rejection is counted in a :class:`~federation.scheduler.types.FilterReport`.

Resources already taken by the plan being built are an overlay (:class:`Usage`) on top of the
snapshot's node views, which are never mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from federation.model import fit
from federation.model.constraints import ConstraintCache
from federation.model.usage import Usage, free_cpu, free_gpu_devices, free_memory
from federation.scheduler.types import (
    AllocationView,
    Constraint,
    FilterReport,
    NodeView,
    TaskGroupDemand,
)

__all__ = [
    "ConstraintCache", "Usage", "add_instance", "can_take", "constraint_holds",
    "count_existing", "feasible_nodes", "free_cpu", "free_gpu_devices", "free_memory",
    "resource_shortfall",
]

resource_shortfall = fit.resource_shortfall


def constraint_holds(constraint: Constraint, node: NodeView) -> bool:
    """Whether ``node`` satisfies ``constraint`` (the model's one evaluator)."""
    return constraint.matches(node.attribute(constraint.attribute))


def add_instance(usage: Usage, node: NodeView, group: TaskGroupDemand,
                 devices: Sequence[int]) -> None:
    """Record one more instance of ``group`` on ``node`` in the plan's overlay."""
    usage.add(node, group.job_id, group.name, group.resources, devices)


def count_existing(allocations: Iterable[AllocationView], group: TaskGroupDemand) -> dict[str, int]:
    """Allocations of this job's group per node."""
    counts: dict[str, int] = {}
    for alloc in allocations:
        if alloc.job_id == group.job_id and alloc.group == group.name:
            counts[alloc.node_id] = counts.get(alloc.node_id, 0) + 1
    return counts


def feasible_nodes(
    nodes: Sequence[NodeView],
    group: TaskGroupDemand,
    *,
    usage: Usage | None = None,
    existing_per_node: Mapping[str, int] | None = None,
    cache: ConstraintCache | None = None,
    report: FilterReport | None = None,
) -> list[NodeView]:
    """Nodes that can take one more instance of ``group`` now, in input order.

    ``existing_per_node`` counts the group's committed allocations per node (for
    ``distinct_hosts`` and ``max_per_node``); ``usage`` is what the plan already added.
    Rejections are counted in ``report`` when one is given.
    """
    usage = usage if usage is not None else Usage()
    existing = existing_per_node or {}
    cache = cache if cache is not None else ConstraintCache(group.constraints)
    limit = fit.per_node_limit(group.distinct_hosts, group.max_per_node)
    out = []
    for node in nodes:
        if report is not None:
            report.nodes_evaluated += 1
        reason = _rejection(node, group, usage, existing, cache, limit)
        if reason is None:
            out.append(node)
            if report is not None:
                report.nodes_feasible += 1
        elif report is not None:
            kind, _, detail = reason.partition(":")
            if kind == "resource":
                report.note_exhausted(detail)
            else:
                report.note_filtered(detail)
    return out


def can_take(
    node: NodeView,
    group: TaskGroupDemand,
    usage: Usage,
    existing: Mapping[str, int],
    cache: ConstraintCache,
) -> bool:
    """Whether ``node`` can take one more instance of ``group`` now: :func:`feasible_nodes`
    for one node, without the bookkeeping of reasons (the planner's sampling loop)."""
    limit = fit.per_node_limit(group.distinct_hosts, group.max_per_node)
    return _rejection(node, group, usage, existing, cache, limit, explain=False) is None


def _rejection(
    node: NodeView,
    group: TaskGroupDemand,
    usage: Usage,
    existing: Mapping[str, int],
    cache: ConstraintCache,
    limit: int | None,
    explain: bool = True,
) -> str | None:
    here = 0
    if limit is not None:
        here = existing.get(node.id, 0) + usage.group_count.get(
            (group.job_id, group.name, node.id), 0)
    return fit.rejection(node, group.resources, usage, cache, limit, here,
                         limit_reason=fit.limit_reason(group.distinct_hosts), explain=explain)
