"""Feasibility: which nodes can take one more instance of a group, and why the others cannot.

A chain of small checks, cheapest and most cacheable first: node status, constraints (cached
per class of identical nodes), per-group limits (``distinct_hosts``, ``max_per_node``), then
resources including GPU devices and shares. Each rejection is counted in a
:class:`~federation.scheduler.types.FilterReport`.

Resources already taken by the plan being built are an overlay (:class:`Usage`) on top of the
snapshot's node views, which are never mutated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from federation.scheduler.types import (
    MILLI_PER_GPU,
    AllocationView,
    Constraint,
    FilterReport,
    NodeView,
    Resources,
    TaskGroupDemand,
)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def constraint_holds(constraint: Constraint, node: NodeView) -> bool:
    """Whether ``node`` satisfies ``constraint``. A missing attribute fails every operator
    except ``!=`` and ``not_in`` (a node without a rack is not in rack r1)."""
    value = node.attribute(constraint.attribute)
    op = constraint.operator
    if op == "exists":
        return value is not None
    if op == "!=":
        return value is None or value != str(constraint.value)
    if op == "not_in":
        return value is None or value not in {str(v) for v in constraint.value}
    if value is None:
        return False
    if op == "=":
        return value == str(constraint.value)
    if op == "in":
        return value in {str(v) for v in constraint.value}
    return _regex(str(constraint.value)).search(value) is not None  # regex


class ConstraintCache:
    """Answers "which constraint, if any, rejects this node" once per class of identical nodes.

    Constraints on ``node.id`` are evaluated per node; all others once per ``class_key``.
    """

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        self.per_node = [c for c in constraints if c.attribute == "node.id"]
        self.per_class = [c for c in constraints if c.attribute != "node.id"]
        self._by_class: dict[tuple[object, ...], Constraint | None] = {}
        self.class_hits = 0

    def first_failing(self, node: NodeView) -> Constraint | None:
        key = node.class_key
        if key in self._by_class:
            self.class_hits += 1
            failing = self._by_class[key]
        else:
            failing = next((c for c in self.per_class if not constraint_holds(c, node)), None)
            self._by_class[key] = failing
        if failing is not None:
            return failing
        return next((c for c in self.per_node if not constraint_holds(c, node)), None)


@dataclass
class Usage:
    """Resources the plan under construction has added per node (an overlay on the snapshot)."""

    cpu_milli: dict[str, int] = field(default_factory=dict)
    memory_mib: dict[str, int] = field(default_factory=dict)
    gpu_milli: dict[str, list[int]] = field(default_factory=dict)  # per device
    group_count: dict[tuple[str, str, str], int] = field(default_factory=dict)  # job, group, node

    def copy(self) -> Usage:
        # Device lists are replaced, never changed in place, so a shallow copy is enough.
        return Usage(
            dict(self.cpu_milli),
            dict(self.memory_mib),
            dict(self.gpu_milli),
            dict(self.group_count),
        )

    def add(self, node: NodeView, group: TaskGroupDemand, devices: Sequence[int]) -> None:
        res = group.resources
        self.cpu_milli[node.id] = self.cpu_milli.get(node.id, 0) + res.cpu_milli
        self.memory_mib[node.id] = self.memory_mib.get(node.id, 0) + res.memory_mib
        if devices:
            used = list(self.gpu_milli.get(node.id) or [0] * node.capacity.gpu)
            per_device = res.gpu_share_milli if res.gpu_share_milli else MILLI_PER_GPU
            for d in devices:
                used[d] += per_device
            self.gpu_milli[node.id] = used
        key = (group.job_id, group.name, node.id)
        self.group_count[key] = self.group_count.get(key, 0) + 1


def count_existing(allocations: Iterable[AllocationView], group: TaskGroupDemand) -> dict[str, int]:
    """Allocations of this job's group per node."""
    counts: dict[str, int] = {}
    for alloc in allocations:
        if alloc.job_id == group.job_id and alloc.group == group.name:
            counts[alloc.node_id] = counts.get(alloc.node_id, 0) + 1
    return counts


def free_cpu(node: NodeView, usage: Usage) -> int:
    return node.capacity.cpu_milli - node.allocated.cpu_milli - usage.cpu_milli.get(node.id, 0)


def free_memory(node: NodeView, usage: Usage) -> int:
    return node.capacity.memory_mib - node.allocated.memory_mib - usage.memory_mib.get(node.id, 0)


def free_gpu_devices(node: NodeView, usage: Usage) -> list[int]:
    """Free milli-GPU per device of ``node`` after the plan's own usage."""
    extra = usage.gpu_milli.get(node.id)
    used = node.gpu_used
    if extra is None:
        return [MILLI_PER_GPU - u for u in used]
    return [MILLI_PER_GPU - u - e for u, e in zip(used, extra, strict=True)]


def resource_shortfall(node: NodeView, resources: Resources, usage: Usage) -> str | None:
    """The first resource that does not fit (``cpu``, ``memory``, ``gpu``, ``gpu_share``)."""
    if free_cpu(node, usage) < resources.cpu_milli:
        return "cpu"
    if free_memory(node, usage) < resources.memory_mib:
        return "memory"
    if resources.gpu:
        free = free_gpu_devices(node, usage)
        if sum(1 for f in free if f >= MILLI_PER_GPU) < resources.gpu:
            return "gpu"
    elif resources.gpu_share_milli:
        free = free_gpu_devices(node, usage)
        if not any(f >= resources.gpu_share_milli for f in free):
            return "gpu_share"
    return None


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
    limit = 1 if group.distinct_hosts else group.max_per_node
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
    limit = 1 if group.distinct_hosts else group.max_per_node
    return _rejection(node, group, usage, existing, cache, limit, explain=False) is None


_REJECTED = "rejected"


def _rejection(
    node: NodeView,
    group: TaskGroupDemand,
    usage: Usage,
    existing: Mapping[str, int],
    cache: ConstraintCache,
    limit: int | None,
    explain: bool = True,
) -> str | None:
    if node.status != "ready":
        return f"filter:status {node.status}" if explain else _REJECTED
    if node.draining:
        return "filter:draining"
    failing = cache.first_failing(node)
    if failing is not None:
        return f"filter:constraint {failing}" if explain else _REJECTED
    if limit is not None:
        here = existing.get(node.id, 0) + usage.group_count.get(
            (group.job_id, group.name, node.id), 0
        )
        if here >= limit:
            return "filter:distinct_hosts" if group.distinct_hosts else "filter:max_per_node"
    short = resource_shortfall(node, group.resources, usage)
    if short is not None:
        return f"resource:{short}" if explain else _REJECTED
    return None
