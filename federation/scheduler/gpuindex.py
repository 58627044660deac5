"""Ranking GPU work over every node at the cost of its distinct node states.

GPU groups are ranked against all feasible nodes (fragmentation is where quality is won), and
a node's GPU score depends only on its *state*: free CPU and the free milli-GPU of its
devices. Thousands of nodes share a few hundred states (every empty node of one type is one
state), so :class:`GpuIndex` keeps every node's free resources as arrays, in step with the
plan's overlay (:class:`~federation.model.usage.Usage`), interns node states, and remembers
each state's score per task shape for the workload profile of the pass. Choosing a node for
one more instance is then a few numpy operations over the nodes plus one score per state not
seen before.

It makes exactly the choice :func:`federation.scheduler.ranking.rank` would (same score, same
ties: cheaper node, then node id); ``tests/scheduler/test_gpuindex.py`` holds the two to
that. It applies to groups ranked by fragmentation (GPU work, and CPU-only work on a cluster
with GPUs when a profile is given) without spread, affinities or ``node.id`` constraints,
with a profile that ignores memory (the default); other groups take the general path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.model import MILLI_PER_GPU, ConstraintCache, Resources
from federation.model.usage import Usage, free_cpu, free_gpu_devices, free_memory
from federation.scheduler.fragmentation import TaskShape, WorkloadProfile, placement_loss
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.ranking import (
    fragmentation_cost,
    fragmentation_shape,
    leftover_score,
)
from federation.scheduler.types import FilterReport, NodeView, TaskGroupDemand


@dataclass
class _Scores:
    """Cost and device to take per state id, for one task shape and profile."""

    cost: np.ndarray
    device_free: np.ndarray
    known: np.ndarray


@dataclass
class StateTable:
    """Interned node states and their scores; shared by every copy of an index (states are
    facts: a state id means the same free resources forever)."""

    width: int
    ids: dict[tuple[int, ...], int] = field(default_factory=dict)
    cpu: list[int] = field(default_factory=list)
    gpu: list[tuple[int, ...]] = field(default_factory=list)  # free per device, descending
    scores: dict[tuple[int, TaskShape], tuple[Any, _Scores]] = field(default_factory=dict)

    def intern(self, cpu: int, gpu_free: list[int]) -> int:
        row = tuple(sorted(gpu_free, reverse=True))
        row += (0,) * (self.width - len(row))
        key = (cpu, *row)
        sid = self.ids.get(key)
        if sid is None:
            sid = len(self.cpu)
            self.ids[key] = sid
            self.cpu.append(cpu)
            self.gpu.append(row)
        return sid

    def costs(self, profile: WorkloadProfile | None, res: Resources,
              states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost (lower is better) and the free amount of the device to take, per state."""
        shape = fragmentation_shape(res)
        key = (id(profile), shape)
        entry = self.scores.get(key)
        size = len(self.cpu)
        if entry is None or entry[1].known.shape[0] < size:
            grown = max(size, 64) * 2
            scores = _Scores(np.zeros(grown), np.full(grown, -1, np.int64),
                             np.zeros(grown, bool))
            if entry is not None:
                old = entry[1]
                n = old.known.shape[0]
                scores.cost[:n], scores.device_free[:n], scores.known[:n] = (
                    old.cost, old.device_free, old.known)
            entry = (profile, scores)  # the profile is held so its id stays its own
            self.scores[key] = entry
        scores = entry[1]
        unknown = ~scores.known[states]
        if unknown.any():
            todo = np.unique(states[unknown])
            cpu = np.array([self.cpu[s] for s in todo], np.int64)
            gpu = np.array([self.gpu[s] for s in todo], np.int64).reshape(todo.size, self.width)
            gpu_left = gpu.sum(axis=1) - res.gpu_milli
            leftover = leftover_score(cpu - res.cpu_milli, gpu_left)
            if profile is not None and profile.size:
                loss, device_free = placement_loss(
                    profile, shape, cpu, np.zeros(todo.size, np.int64), gpu)
            else:
                loss, device_free = np.zeros(todo.size), np.full(todo.size, -1, np.int64)
            scores.cost[todo] = fragmentation_cost(np.asarray(loss, np.float64), leftover)
            scores.device_free[todo] = device_free
            scores.known[todo] = True
        return scores.cost[states], scores.device_free[states]


class GpuIndex:
    """Free CPU, memory and per-device GPU of every node of a :class:`NodeSet`, after a
    plan's overlay; copied with the overlay, updated by it."""

    def __init__(self, nodes: NodeSet, usage: Usage) -> None:
        self.nodes = nodes
        n = len(nodes)
        width = max((v.capacity.gpu for v in nodes), default=0) or 1
        self.table = StateTable(width)
        self.cpu_free = np.zeros(n, np.int64)
        self.mem_free = np.zeros(n, np.int64)
        self.gpu_free = np.zeros((n, width), np.int64)
        self.max_free = np.zeros(n, np.int64)  # the roomiest device
        self.full = np.zeros(n, np.int64)  # fully free devices
        self.state = np.zeros(n, np.int64)
        for i, node in enumerate(nodes):
            self._load(i, node, usage)
        self.ready = np.array([v.status == "ready" and not v.draining for v in nodes], bool)
        # rank()'s tie-break after the score: cheaper first, then the node id.
        order = sorted(range(n), key=lambda i: (nodes[i].price_per_hour, nodes[i].id))
        self.tie_rank = np.empty(n, np.int64)
        self.tie_rank[order] = np.arange(n)
        classes: dict[tuple[Any, ...], int] = {}
        self.class_of = np.array([classes.setdefault(v.class_key, len(classes)) for v in nodes],
                                 np.int64)
        self.class_rep: list[NodeView] = [NodeView("", Resources())] * len(classes)
        for i, c in enumerate(self.class_of.tolist()):
            if self.class_rep[c].id == "":
                self.class_rep[c] = nodes[i]

    def _load(self, i: int, node: NodeView, usage: Usage) -> None:
        self.cpu_free[i] = free_cpu(node, usage)
        self.mem_free[i] = free_memory(node, usage)
        free = free_gpu_devices(node, usage)
        self.gpu_free[i, :] = 0
        self.gpu_free[i, : len(free)] = free
        self.max_free[i] = max(free, default=0)
        self.full[i] = sum(1 for f in free if f >= MILLI_PER_GPU)
        self.state[i] = self.table.intern(int(self.cpu_free[i]), free)

    def copy(self) -> GpuIndex:
        other = object.__new__(GpuIndex)
        other.__dict__.update(self.__dict__)
        for name in ("cpu_free", "mem_free", "gpu_free", "max_free", "full", "state"):
            setattr(other, name, getattr(self, name).copy())
        return other

    def changed(self, node: NodeView, usage: Usage) -> None:
        """The overlay changed on ``node``: read its free resources again."""
        i = self.nodes.position(node.id)
        if i is not None:  # the index's own view of the node: usage is keyed by node id
            self._load(i, self.nodes[i], usage)

    # -- choosing ------------------------------------------------------------------------

    def fits(self, res: Resources, allowed: np.ndarray | None = None) -> np.ndarray:
        """Nodes with room for one instance of ``res`` (among ``allowed`` when given)."""
        ok = self.cpu_free >= res.cpu_milli
        ok &= self.mem_free >= res.memory_mib
        if res.gpu:
            ok &= self.full >= res.gpu
        elif res.gpu_share_milli:
            ok &= self.max_free >= res.gpu_share_milli
        if allowed is not None:
            ok &= allowed
        return ok

    def allowed(self, cache: ConstraintCache) -> np.ndarray:
        """Ready, not draining, and passing the group's constraints (once per class)."""
        if not cache.per_class and not cache.per_node:
            return self.ready
        passing = np.array([cache.first_failing(rep) is None for rep in self.class_rep], bool)
        return self.ready & passing[self.class_of]

    def best(self, group: TaskGroupDemand, candidates: np.ndarray,
             profile: WorkloadProfile | None, job_on_node: Mapping[str, int]
             ) -> tuple[int, tuple[int, ...], float] | None:
        """The position of the best node among ``candidates`` (a mask), its devices and
        score, as :func:`~federation.scheduler.ranking.rank` ranks them."""
        where = np.flatnonzero(candidates)
        if where.size == 0:
            return None
        res = group.resources
        cost, device_free = self.table.costs(profile, res, self.state[where])
        if job_on_node:  # the anti-affinity term of rank(), on the few nodes it touches
            for node_id, on in job_on_node.items():
                i = self.nodes.position(node_id)
                if on > 0 and i is not None and candidates[i]:
                    j = int(np.searchsorted(where, i))
                    cost[j] += min(1.0, (on + 1) / max(group.count, 1))
        # Ties as rank() breaks them: the score rounded to 9 places, then price, then id.
        band = np.flatnonzero(cost <= cost.min() + 2e-9)
        near = cost[band]
        if near.max() > near.min():  # close but unequal: compare as round() does
            rounded = [round(float(c), 9) for c in near]
            top = min(rounded)
            band = band[[r == top for r in rounded]]
        pick = band[int(np.argmin(self.tie_rank[where[band]]))] if band.size > 1 else band[0]
        key = np.array([round(float(cost[pick]), 9)])
        i = int(where[pick])
        free = [int(f) for f in self.gpu_free[i, : self.nodes[i].capacity.gpu]]
        if not res.gpu_milli:
            devices: tuple[int, ...] = ()
        elif res.gpu:
            devices = tuple(d for d, f in enumerate(free) if f >= MILLI_PER_GPU)[: res.gpu]
        else:
            fitting = [d for d, f in enumerate(free) if f >= res.gpu_share_milli]
            same = [d for d in fitting if free[d] == int(device_free[pick])]
            devices = (min(same or fitting, key=lambda d: (free[d], d)),)
        return i, devices, -float(key[0])

    def report(self, group: TaskGroupDemand, cache: ConstraintCache,
               at_limit: np.ndarray | None, limit_reason: str) -> FilterReport:
        """Why no node can take the group, counted as :func:`feasible_nodes` counts it."""
        report = FilterReport(nodes_evaluated=len(self.nodes))
        left = np.ones(len(self.nodes), bool)
        for i in np.flatnonzero(~self.ready).tolist():
            node = self.nodes[i]
            report.note_filtered(f"status {node.status}" if node.status != "ready"
                                 else "draining")
        left &= self.ready
        failing = [cache.first_failing(rep) for rep in self.class_rep]
        for c, constraint in enumerate(failing):
            n = int((left & (self.class_of == c)).sum()) if constraint is not None else 0
            if n:
                reason = f"constraint {constraint}"
                report.filtered[reason] = report.filtered.get(reason, 0) + n
        passing = np.array([f is None for f in failing], bool)
        left &= passing[self.class_of]
        if at_limit is not None:
            n = int((left & at_limit).sum())
            if n:
                report.filtered[limit_reason] = report.filtered.get(limit_reason, 0) + n
            left &= ~at_limit
        res = group.resources
        checks = [("cpu", self.cpu_free < res.cpu_milli),
                  ("memory", self.mem_free < res.memory_mib)]
        if res.gpu:
            checks.append(("gpu", self.full < res.gpu))
        elif res.gpu_share_milli:
            checks.append(("gpu_share", self.max_free < res.gpu_share_milli))
        for name, short in checks:
            n = int((left & short).sum())
            if n:
                report.exhausted[name] = report.exhausted.get(name, 0) + n
            left &= ~short
        report.nodes_feasible = int(left.sum())
        return report


def fast_path_applies(group: TaskGroupDemand, profile: WorkloadProfile | None,
                      affinities: object) -> bool:
    """Whether :class:`GpuIndex` ranks this group (one ranked by fragmentation, see
    :func:`~federation.scheduler.ranking.ranks_by_fragmentation`) exactly as the general
    path would."""
    return bool(
        group.spread is None
        and not affinities
        and not any(c.attribute == "node.id" for c in group.constraints)
        and (profile is None or not profile.memory_mib.any())
    )


def index_for(nodes: NodeSet, usage: Usage) -> GpuIndex:
    """The overlay's index over ``nodes``, built on first use."""
    index = usage.index
    if not isinstance(index, GpuIndex) or index.nodes is not nodes:
        index = GpuIndex(nodes, usage)
        usage.index = index
    return index
