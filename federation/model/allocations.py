"""Allocations: their statuses, the one definition of a live allocation, and their view
for placement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.model.resources import Resources, resources_of_record

DESIRED_STATUSES = ("run", "stop", "evict")  # what the scheduler wants
CLIENT_STATUSES = ("pending", "running", "complete", "failed", "lost")  # what the agent saw
LIVE_CLIENT_STATUSES = ("pending", "running")  # still holding the node's resources


def is_live(alloc: Mapping[str, Any]) -> bool:
    """An allocation that holds its node's resources: meant to run and not yet ended."""
    return alloc.get("desired_status") == "run" and alloc.get("client_status") in \
        LIVE_CLIENT_STATUSES


@dataclass(frozen=True)
class AllocationView:
    """An allocation already committed (or planned) on a node."""

    id: str
    job_id: str
    group: str
    node_id: str
    resources: Resources
    priority: int = 50
    gpu_devices: tuple[int, ...] = ()


def allocation_view(record: Mapping[str, Any], priority: int | None = None) -> AllocationView:
    """The view of an allocation record (``priority`` overrides the record's)."""
    return AllocationView(
        record["id"], record["job_id"], record["group"], record["node_id"],
        resources_of_record(record),
        int(record.get("priority", 50)) if priority is None else priority,
        tuple(int(d) for d in (record.get("resources") or {}).get("gpu_devices") or ()))
