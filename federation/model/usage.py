"""What is in use on nodes: the replicated per-node totals of live allocations
(:class:`NodeUsage`, kept by the state machine) and the overlay a plan under construction
adds on top of a snapshot (:class:`Usage`), with the free room both leave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation.model.allocations import AllocationView, is_live
from federation.model.nodes import NodeView
from federation.model.resources import MILLI_PER_GPU, Resources, gpu_per_device_milli


class NodeUsage:
    """CPU, memory and per-device GPU held on each node by its live allocations."""

    def __init__(self) -> None:
        self.cpu_milli: dict[str, int] = {}
        self.memory_mib: dict[str, int] = {}
        self.gpu_milli: dict[str, dict[int, int]] = {}  # node -> device -> milli-GPU

    @classmethod
    def of(cls, allocations: Mapping[str, Mapping[str, Any]]) -> NodeUsage:
        usage = cls()
        for alloc in allocations.values():
            usage.replace(None, alloc)
        return usage

    def replace(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        """Account for an allocation record changing from ``old`` to ``new`` (either absent)."""
        if old is not None and is_live(old):
            self._add(old, -1)
        if new is not None and is_live(new):
            self._add(new, 1)

    def _add(self, alloc: Mapping[str, Any], sign: int) -> None:
        node_id = alloc["node_id"]
        res = alloc.get("resources") or {}
        _bump(self.cpu_milli, node_id, sign * int(res.get("cpu_milli", 0) or 0))
        _bump(self.memory_mib, node_id, sign * int(res.get("memory_mib", 0) or 0))
        devices = res.get("gpu_devices") or ()
        if devices:
            per_device = gpu_per_device_milli(res)
            row = self.gpu_milli.setdefault(node_id, {})
            for d in devices:
                _bump(row, int(d), sign * per_device)
            if not row:
                del self.gpu_milli[node_id]

    def add_totals(self, node_id: str, cpu_milli: int, memory_mib: int) -> None:
        """Add CPU and memory held on a node (several allocations' at once)."""
        _bump(self.cpu_milli, node_id, cpu_milli)
        _bump(self.memory_mib, node_id, memory_mib)

    def gpu_used(self, node_id: str, gpus: int) -> list[int]:
        """Milli-GPU in use on each of the node's ``gpus`` devices."""
        row = self.gpu_milli.get(node_id, {})
        return [row.get(d, 0) for d in range(gpus)]

    def gpu_devices_busy(self, node_id: str) -> int:
        """Devices with anything on them."""
        return sum(1 for milli in self.gpu_milli.get(node_id, {}).values() if milli > 0)


def _bump(totals: dict[Any, int], key: Any, amount: int) -> None:
    # Totals back at zero are dropped, so usage rebuilt from the allocations (after a restore)
    # is equal to usage kept up to date since the start.
    value = totals.get(key, 0) + amount
    if value:
        totals[key] = value
    else:
        totals.pop(key, None)


@dataclass
class Usage:
    """Resources a plan under construction has added (or, negative, released) per node: an
    overlay on a snapshot's node views, which are never changed."""

    cpu_milli: dict[str, int] = field(default_factory=dict)
    memory_mib: dict[str, int] = field(default_factory=dict)
    gpu_milli: dict[str, list[int]] = field(default_factory=dict)  # per device
    group_count: dict[tuple[str, str, str], int] = field(default_factory=dict)  # job, group, node
    # A derived index of free resources kept in step with the overlay (the scheduler's
    # GpuIndex): anything with ``copy()`` and ``changed(node, usage)``.
    index: Any = field(default=None, compare=False, repr=False)

    def copy(self) -> Usage:
        # Device lists are replaced, never changed in place, so a shallow copy is enough.
        return Usage(dict(self.cpu_milli), dict(self.memory_mib), dict(self.gpu_milli),
                     dict(self.group_count),
                     self.index.copy() if self.index is not None else None)

    def add(self, node: NodeView, job_id: str, group: str, res: Resources,
            devices: Sequence[int]) -> None:
        """One instance of ``job_id``/``group`` asking ``res`` placed on ``node``."""
        self.cpu_milli[node.id] = self.cpu_milli.get(node.id, 0) + res.cpu_milli
        self.memory_mib[node.id] = self.memory_mib.get(node.id, 0) + res.memory_mib
        if devices:
            used = list(self.gpu_milli.get(node.id) or [0] * node.capacity.gpu)
            per_device = res.gpu_per_device_milli
            for d in devices:
                used[d] += per_device
            self.gpu_milli[node.id] = used
        key = (job_id, group, node.id)
        self.group_count[key] = self.group_count.get(key, 0) + 1
        if self.index is not None:
            self.index.changed(node, self)

    def release(self, node: NodeView, alloc: AllocationView) -> None:
        """Give back what ``alloc`` holds on ``node`` (an eviction or stop in the plan)."""
        res = alloc.resources
        self.cpu_milli[node.id] = self.cpu_milli.get(node.id, 0) - res.cpu_milli
        self.memory_mib[node.id] = self.memory_mib.get(node.id, 0) - res.memory_mib
        if alloc.gpu_devices:
            used = list(self.gpu_milli.get(node.id) or [0] * node.capacity.gpu)
            per_device = res.gpu_per_device_milli
            for d in alloc.gpu_devices:
                if 0 <= d < len(used):
                    used[d] -= per_device
            self.gpu_milli[node.id] = used
        if self.index is not None:
            self.index.changed(node, self)


def free_cpu(node: NodeView, usage: Usage) -> int:
    return node.capacity.cpu_milli - node.allocated.cpu_milli - usage.cpu_milli.get(node.id, 0)


def free_memory(node: NodeView, usage: Usage) -> int:
    return node.capacity.memory_mib - node.allocated.memory_mib - usage.memory_mib.get(node.id, 0)


def free_gpu_devices(node: NodeView, usage: Usage) -> list[int]:
    """Free milli-GPU per device of ``node`` after the overlay."""
    extra = usage.gpu_milli.get(node.id)
    used = node.gpu_used
    if extra is None:
        return [MILLI_PER_GPU - u for u in used]
    return [MILLI_PER_GPU - u - e for u, e in zip(used, extra, strict=True)]
