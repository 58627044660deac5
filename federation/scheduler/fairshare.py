"""Fair share: the order in which pending work across weighted queues is offered to planning.

Dominant resource fairness (Ghodsi et al.): a queue's dominant share is the largest fraction
of any cluster resource (CPU, memory, GPU) it uses, divided by its weight. Pending work is
taken from the queue with the lowest dominant share, one item at a time, counting each item
as if it were placed; within a queue, higher priority first, then submission order. Work that
would push its queue past its quota is held back with a reason. Pure.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from federation.model import ResourceTotals

UNLIMITED = 1 << 50  # a quota's resource that is not limited


@dataclass(frozen=True)
class QueueSpec:
    name: str
    weight: float = 1.0
    quota: ResourceTotals | None = None


@dataclass(frozen=True)
class PendingWork:
    id: str
    queue: str
    demand: ResourceTotals
    priority: int = 50
    submitted: int = 0  # a monotonically increasing submission number


def dominant_share(used: ResourceTotals, capacity: ResourceTotals, weight: float = 1.0) -> float:
    shares = [
        used.cpu_milli / capacity.cpu_milli if capacity.cpu_milli else 0.0,
        used.memory_mib / capacity.memory_mib if capacity.memory_mib else 0.0,
        used.gpu_milli / capacity.gpu_milli if capacity.gpu_milli else 0.0,
    ]
    return max(shares) / max(weight, 1e-9)


def _within(used: ResourceTotals, quota: ResourceTotals | None) -> bool:
    if quota is None:
        return True
    return (
        used.cpu_milli <= quota.cpu_milli
        and used.memory_mib <= quota.memory_mib
        and used.gpu_milli <= quota.gpu_milli
    )


def _amounts(res: ResourceTotals, limit: ResourceTotals) -> str:
    """``cpu 1500m, memory 512 MiB`` for the resources ``limit`` limits."""
    parts = []
    if limit.cpu_milli < UNLIMITED:
        parts.append(f"cpu {res.cpu_milli}m")
    if limit.memory_mib < UNLIMITED:
        parts.append(f"memory {res.memory_mib} MiB")
    if limit.gpu_milli < UNLIMITED:
        parts.append(f"gpu {res.gpu_milli / 1000:g}")
    return ", ".join(parts)


def quota_reason(queue: str, demand: ResourceTotals, used: ResourceTotals,
                 quota: ResourceTotals | None) -> str:
    """Why work is held by its queue's quota, in words that say what to do."""
    if quota is None:
        return ""
    if not _within(demand, quota):
        return (f"needs {_amounts(demand, quota)}, more than queue {queue}'s whole quota "
                f"({_amounts(quota, quota)}): it can never run in this queue; raise the quota "
                "or use another queue")
    return (f"queue {queue} quota exhausted: {_amounts(used, quota)} in use of "
            f"{_amounts(quota, quota)}; this job needs {_amounts(demand, quota)} more and "
            "waits for the queue's work to finish")


def drf_order(
    pending: Sequence[PendingWork],
    queues: Sequence[QueueSpec],
    usage: Mapping[str, ResourceTotals],
    capacity: ResourceTotals,
) -> tuple[list[PendingWork], dict[str, str]]:
    """Order ``pending`` by DRF across queues; returns (ordered work, held id -> reason).

    ``usage`` is each queue's current allocation. Queues not in ``queues`` get weight 1 and no
    quota.
    """
    specs = {q.name: q for q in queues}
    backlog: dict[str, list[PendingWork]] = {}
    for item in sorted(pending, key=lambda w: (-w.priority, w.submitted, w.id)):
        backlog.setdefault(item.queue, []).append(item)
    used = {name: usage.get(name, ResourceTotals()) for name in backlog}
    heap: list[tuple[float, str]] = []
    for name in backlog:
        spec = specs.get(name, QueueSpec(name))
        heapq.heappush(heap, (dominant_share(used[name], capacity, spec.weight), name))
    position = dict.fromkeys(backlog, 0)
    ordered: list[PendingWork] = []
    held: dict[str, str] = {}
    while heap:
        _, name = heapq.heappop(heap)
        items = backlog[name]
        spec = specs.get(name, QueueSpec(name))
        while position[name] < len(items):
            item = items[position[name]]
            position[name] += 1
            after = used[name] + item.demand
            if not _within(after, spec.quota):
                held[item.id] = quota_reason(name, item.demand, used[name], spec.quota)
                continue
            used[name] = after
            ordered.append(item)
            break
        if position[name] < len(items):
            heapq.heappush(heap, (dominant_share(used[name], capacity, spec.weight), name))
    return ordered, held
