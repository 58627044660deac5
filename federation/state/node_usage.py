"""What each node's live allocations hold, kept current as allocations are written.

The state machine updates it on every allocation write, so checking that a plan fits its
nodes when it is applied, and building the scheduler's snapshot, read per-node totals
instead of summing every allocation in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MILLI_PER_GPU = 1000
LIVE_CLIENT_STATUSES = ("pending", "running")


def is_live(alloc: Mapping[str, Any]) -> bool:
    """An allocation that holds its node's resources: meant to run and not yet ended."""
    return alloc["desired_status"] == "run" and alloc["client_status"] in LIVE_CLIENT_STATUSES


def gpu_per_device_milli(resources: Mapping[str, Any]) -> int:
    """Milli-GPU an allocation takes on each of its devices (a share, or a whole device)."""
    gpu = float(resources.get("gpu", 0) or 0)
    return int(round(gpu * MILLI_PER_GPU)) if 0 < gpu < 1 else MILLI_PER_GPU


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

    def gpu_used(self, node_id: str, gpus: int) -> list[int]:
        """Milli-GPU in use on each of the node's ``gpus`` devices."""
        row = self.gpu_milli.get(node_id, {})
        return [row.get(d, 0) for d in range(gpus)]


def _bump(totals: dict[Any, int], key: Any, amount: int) -> None:
    # Totals back at zero are dropped, so usage rebuilt from the allocations (after a restore)
    # is equal to usage kept up to date since the start.
    value = totals.get(key, 0) + amount
    if value:
        totals[key] = value
    else:
        totals.pop(key, None)
