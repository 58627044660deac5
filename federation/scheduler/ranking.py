"""Ranking: score feasible nodes for one more instance of a group; higher is better.

Small scorers summed into one number, then price breaks ties (cheaper first, so on-prem nodes
at price 0 come before cloud ones), then the node id:

- fit: bin-packing (fuller node after placement scores higher) or its opposite for the
  ``spread`` algorithm; for groups that ask for GPUs, the fragmentation loss of
  :mod:`federation.scheduler.fragmentation` with a small pull towards the tightest fit,
  the same score the ``simulate`` tool's default policy uses;
- spread across an attribute's values, towards target percentages when given;
- anti-affinity among the job's own instances on one node;
- soft affinities with weights.

Candidate sampling (Nomad's limit iterator): services look at about log2(n) feasible nodes,
batch work at two, GPU work at all of them since fragmentation is where quality is won.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from federation.scheduler.feasibility import Usage, free_cpu, free_gpu_devices, free_memory
from federation.scheduler.fragmentation import TaskShape, WorkloadProfile, placement_loss
from federation.scheduler.types import (
    MILLI_PER_GPU,
    Constraint,
    NodeView,
    Resources,
    TaskGroupDemand,
)

# The FGD paper's normalisers for leftover CPU and GPU (the largest node in its trace).
LEFTOVER_CPU_MILLI = 128_000.0
LEFTOVER_GPU_MILLI = 8_000.0
# Weight of the tightest-fit pull next to the fragmentation loss (in whole GPUs).
FRAGMENTATION_BESTFIT_WEIGHT = 0.005


def leftover_score(cpu_left_milli: np.ndarray | float, gpu_left_milli: np.ndarray | float):
    """Normalised leftover CPU and GPU after a placement (lower is a tighter fit)."""
    return (
        0.5 * np.asarray(cpu_left_milli) / LEFTOVER_CPU_MILLI
        + 0.5 * np.asarray(gpu_left_milli) / LEFTOVER_GPU_MILLI
    )


def fragmentation_cost(loss_milli: np.ndarray, leftover: np.ndarray) -> np.ndarray:
    """Cost of a GPU placement: usable GPU lost (in GPUs) plus a little leftover (lower wins)."""
    return loss_milli / MILLI_PER_GPU + FRAGMENTATION_BESTFIT_WEIGHT * leftover


@dataclass(frozen=True)
class Affinity:
    """A soft preference: nodes where ``constraint`` holds gain ``weight`` / 100 (-100..100)."""

    constraint: Constraint
    weight: int = 50


def candidate_limit(group: TaskGroupDemand, feasible_count: int) -> int | None:
    """How many feasible nodes to score; ``None`` scores them all."""
    if group.resources.gpu_milli or group.gang or feasible_count <= 8:
        return None
    if group.job_type == "batch":
        return 2
    return max(2, math.ceil(math.log2(feasible_count)))


def binpack_score(node: NodeView, resources: Resources, usage: Usage) -> float:
    """Mean CPU and memory utilisation of the node after placing ``resources`` (0..1)."""
    cpu_cap = max(node.capacity.cpu_milli, 1)
    mem_cap = max(node.capacity.memory_mib, 1)
    cpu_used = cpu_cap - free_cpu(node, usage) + resources.cpu_milli
    mem_used = mem_cap - free_memory(node, usage) + resources.memory_mib
    return 0.5 * (cpu_used / cpu_cap + mem_used / mem_cap)


def fragmentation_shape(resources: Resources) -> TaskShape:
    """The fragmentation model's shape of one instance asking ``resources``."""
    if not resources.gpu_milli:
        return TaskShape(resources.cpu_milli)
    return TaskShape(resources.cpu_milli, resources.gpu or 1, resources.gpu_per_device_milli)


def ranks_by_fragmentation(group: TaskGroupDemand, profile: WorkloadProfile | None,
                           has_gpus: Callable[[], bool]) -> bool:
    """Whether ``group`` is ranked by the GPU it leaves usable (all nodes scored): GPU work
    always; CPU-only work packed with the binpack algorithm when a workload profile is given
    and the cluster has GPUs, since CPU taken from a GPU node can strand its GPUs."""
    if group.resources.gpu_milli:
        return True
    return profile is not None and group.algorithm == "binpack" and has_gpus()


def gpu_choices(
    nodes: Sequence[NodeView],
    resources: Resources,
    usage: Usage,
    profile: WorkloadProfile | None,
) -> list[tuple[tuple[int, ...], float]]:
    """GPU devices for one instance on each node and the fragmentation cost of that choice.

    Whole GPUs take the lowest-numbered fully free devices; a share takes the device whose use
    loses the least usable GPU under ``profile`` (the tightest one when tied, or when no
    profile is given); CPU-only work takes none, and is scored by the GPU it strands. One
    vectorised call scores all nodes. Every node must fit.
    """
    frees = [free_gpu_devices(n, usage) for n in nodes]
    cpu = np.array([free_cpu(n, usage) for n in nodes], dtype=np.int64)
    mem = np.array([free_memory(n, usage) for n in nodes], dtype=np.int64)
    gpu_left = np.array([sum(f) for f in frees], dtype=np.int64) - resources.gpu_milli
    leftover = leftover_score(cpu - resources.cpu_milli, gpu_left)
    loss = np.zeros(len(nodes))
    wanted: list[int] = [-1] * len(nodes)
    if profile is not None and nodes:
        width = max(len(f) for f in frees)
        table = np.zeros((len(nodes), width), dtype=np.int64)
        for i, f in enumerate(frees):
            table[i, : len(f)] = sorted(f, reverse=True)
        shape = fragmentation_shape(resources)
        loss, device_free = placement_loss(profile, shape, cpu, mem, table)
        wanted = [int(x) for x in device_free]
    costs = fragmentation_cost(np.asarray(loss, dtype=np.float64), leftover)
    out: list[tuple[tuple[int, ...], float]] = []
    for i, free in enumerate(frees):
        if not resources.gpu_milli:
            out.append(((), float(costs[i])))
            continue
        if resources.gpu:
            devices = tuple(d for d, f in enumerate(free) if f >= MILLI_PER_GPU)[: resources.gpu]
        else:
            fitting = [d for d, f in enumerate(free) if f >= resources.gpu_share_milli]
            same = [d for d in fitting if free[d] == wanted[i]]
            devices = (min(same or fitting, key=lambda d: (free[d], d)),)
        out.append((devices, float(costs[i])))
    return out


def choose_devices(
    node: NodeView, resources: Resources, usage: Usage, profile: WorkloadProfile | None
) -> tuple[tuple[int, ...], float]:
    """:func:`gpu_choices` for one node."""
    return gpu_choices([node], resources, usage, profile)[0]


def spread_score(
    node: NodeView,
    group: TaskGroupDemand,
    value_counts: Mapping[str, int],
    known_values: Sequence[str],
) -> float:
    """Boost for nodes whose attribute value is below its share of the group (-1..1).

    With targets, a value's desired count is its percentage of ``count``; values without a
    target share what the targets leave. Without targets every known value is desired equally.
    """
    spread = group.spread
    if spread is None:
        return 0.0
    value = node.attribute(spread.attribute)
    if value is None:
        return -1.0
    total = max(group.count, 1)
    if spread.targets:
        named = sum(spread.targets.values())
        others = [v for v in known_values if v not in spread.targets]
        if value in spread.targets:
            pct = spread.targets[value]
        else:
            pct = max(0.0, 100.0 - named) / max(len(others), 1)
        desired = total * pct / 100.0
    else:
        desired = total / max(len(known_values), 1)
    current = value_counts.get(value, 0)
    if desired <= 0:
        return -1.0
    return max(-1.0, min(1.0, (desired - current) / desired)) * spread.weight


def anti_affinity_score(on_node: int, group: TaskGroupDemand) -> float:
    """Penalty for stacking the job's own instances on one node (0 when none there)."""
    if on_node <= 0:
        return 0.0
    return -min(1.0, (on_node + 1) / max(group.count, 1))


def affinity_score(node: NodeView, affinities: Sequence[Affinity]) -> float:
    from federation.scheduler.feasibility import constraint_holds

    total = 0.0
    for aff in affinities:
        if constraint_holds(aff.constraint, node):
            total += aff.weight / 100.0
    return total


class RankedNode:
    """A candidate scored for one instance (higher is better) and the GPU devices it would
    take. Its sort key (best first; ties: cheaper, then node id) is computed once: sorting and
    the planner's heap compare it many times."""

    __slots__ = ("node", "score", "devices", "_key")

    def __init__(self, node: NodeView, score: float, devices: tuple[int, ...]) -> None:
        self.node = node
        self.score = score
        self.devices = devices
        self._key = (-round(score, 9), node.price_per_hour, node.id)

    def sort_key(self) -> tuple[float, float, str]:
        return self._key

    def __repr__(self) -> str:
        return f"RankedNode({self.node.id!r}, {self.score!r}, {self.devices!r})"


def rank(
    candidates: Sequence[NodeView],
    group: TaskGroupDemand,
    usage: Usage,
    *,
    profile: WorkloadProfile | None = None,
    value_counts: Mapping[str, int] | None = None,
    known_values: Sequence[str] = (),
    job_on_node: Mapping[str, int] | None = None,
    affinities: Sequence[Affinity] = (),
    include_spread: bool = True,
    fragmentation: bool | None = None,
) -> list[RankedNode]:
    """Score every candidate; best first (ties: cheaper, then node id). With
    ``include_spread=False`` the spread term is left for the caller to add per value.
    ``fragmentation`` (default: when the group asks for GPUs) scores the fit by the GPU the
    placement leaves usable (see :func:`ranks_by_fragmentation`) instead of bin-packing."""
    res = group.resources
    counts = value_counts or {}
    mine = job_on_node or {}
    ranked = []
    frag = bool(res.gpu_milli) if fragmentation is None else fragmentation
    gpu = gpu_choices(candidates, res, usage, profile) if frag else []
    spreading = include_spread and group.spread is not None
    for i, node in enumerate(candidates):
        devices: tuple[int, ...] = ()
        if frag:
            devices, cost = gpu[i]
            fit = -cost
        else:
            fit = binpack_score(node, res, usage)
            if group.algorithm == "spread":
                fit = 1.0 - fit
        score = fit
        if spreading:
            score += spread_score(node, group, counts, known_values)
        on_node = mine.get(node.id, 0)
        if on_node:
            score += anti_affinity_score(on_node, group)
        if affinities:
            score += affinity_score(node, affinities)
        ranked.append(RankedNode(node, score, devices))
    ranked.sort(key=RankedNode.sort_key)
    return ranked
