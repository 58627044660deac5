"""Preemption planning: which lower-priority allocations to evict so a placement fits.

Pure: given a node view, the allocations on it and what the plan already uses there, pick
the fewest allocations of strictly lower priority (lowest priorities first) whose release
makes the demand fit. Across nodes the best option evicts the fewest, then the lowest
priorities. Nothing of equal or higher priority is ever chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from federation.scheduler.feasibility import Usage, resource_shortfall
from federation.scheduler.types import AllocationView, NodeView, Resources


@dataclass(frozen=True)
class PreemptionOption:
    node: NodeView
    victims: tuple[AllocationView, ...]

    def sort_key(self) -> tuple[int, int, int, float, str]:
        prios = [v.priority for v in self.victims]
        return (
            len(prios),
            max(prios, default=0),
            sum(prios),
            self.node.price_per_hour,
            self.node.id,
        )


def _fits_after(
    node: NodeView, demand: Resources, usage: Usage, victims: Sequence[AllocationView]
) -> bool:
    trial = usage.copy()
    for v in victims:
        trial.release(node, v)
    return resource_shortfall(node, demand, trial) is None


def victims_on_node(
    node: NodeView,
    demand: Resources,
    priority: int,
    allocations: Sequence[AllocationView],
    usage: Usage | None = None,
) -> tuple[AllocationView, ...] | None:
    """Fewest lower-priority allocations on ``node`` to evict so ``demand`` fits, or ``None``.

    Greedy from the lowest priority (largest first within a priority), then drop any victim
    the others make unnecessary.
    """
    usage = usage if usage is not None else Usage()
    if resource_shortfall(node, demand, usage) is None:
        return ()
    eligible = sorted(
        (a for a in allocations if a.node_id == node.id and a.priority < priority),
        key=lambda a: (
            a.priority,
            -a.resources.gpu_milli,
            -a.resources.cpu_milli,
            -a.resources.memory_mib,
            a.id,
        ),
    )
    chosen: list[AllocationView] = []
    for alloc in eligible:
        chosen.append(alloc)
        if _fits_after(node, demand, usage, chosen):
            break
    else:
        return None
    for alloc in sorted(chosen, key=lambda a: (-a.priority, a.id)):
        rest = [c for c in chosen if c.id != alloc.id]
        if _fits_after(node, demand, usage, rest):
            chosen = rest
    return tuple(sorted(chosen, key=lambda a: a.id))


def plan_preemption(
    nodes: Sequence[NodeView],
    demand: Resources,
    priority: int,
    allocations: Sequence[AllocationView],
    usage: Usage | None = None,
) -> PreemptionOption | None:
    """The best node to make room on and its victims, or ``None`` when no eviction of lower
    priority work would make ``demand`` fit. ``nodes`` should already pass every
    non-resource check (status, constraints, per-group limits)."""
    # Grouped once: looking at every allocation for every node made one unplaceable
    # instance cost nodes x allocations (seconds per pass at a few thousand of each).
    lower: dict[str, list[AllocationView]] = {}
    for alloc in allocations:
        if alloc.priority < priority:
            lower.setdefault(alloc.node_id, []).append(alloc)
    best: PreemptionOption | None = None
    for node in nodes:
        victims = victims_on_node(node, demand, priority, lower.get(node.id, ()), usage)
        if victims is None:
            continue
        option = PreemptionOption(node, victims)
        if best is None or option.sort_key() < best.sort_key():
            best = option
    return best
