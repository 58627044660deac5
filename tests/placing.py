"""Allocations for tests, brought about by the commands the cluster itself commits.

Only the scheduler's ``plan.apply`` places an allocation (through the plan applier's fit
check); an agent's ``alloc.update_status`` reports its client fields; ``alloc.stop`` tells
it to stop. :func:`commands` turns the allocation records a test wants into that sequence,
so a test sets up state through the production paths rather than writing records directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from federation.state.machine import ALLOC_CLIENT_FIELDS

PLACEMENT_FIELDS = ("id", "job_id", "group", "index", "node_id", "resources", "priority",
                    "job_version")


def commands(job_version: int, allocations: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The commands (without ids) that leave ``allocations`` as given: one ``plan.apply``
    per job, then the client fields each allocation reports, then the stops."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for i, alloc in enumerate(allocations):
        placed = {k: alloc[k] for k in PLACEMENT_FIELDS if k in alloc}
        placed.setdefault("index", i)
        by_job.setdefault(alloc["job_id"], []).append(placed)
    out: list[dict[str, Any]] = [
        {"type": "plan.apply", "job_id": job_id, "job_version": job_version,
         "allocations": placed}
        for job_id, placed in by_job.items()]
    updates = [{k: v for k, v in alloc.items() if k in ALLOC_CLIENT_FIELDS}
               for alloc in allocations if alloc.get("client_status", "pending") != "pending"]
    if updates:
        out.append({"type": "alloc.update_status", "updates": updates})
    stops = [alloc["id"] for alloc in allocations if alloc.get("desired_status") == "stop"]
    if stops:
        out.append({"type": "alloc.stop", "alloc_ids": stops, "reason": "test"})
    return out


def place(apply: Callable[[dict[str, Any]], Any], allocations: list[Mapping[str, Any]],
          job_version: int = 1) -> None:
    """Commit :func:`commands` through ``apply`` (a machine's apply, a master's commit),
    checking that every placement landed."""
    for command in commands(job_version, allocations):
        result = apply(command)
        if isinstance(result, Mapping) and "ok" in result:
            if not result["ok"]:
                raise AssertionError(f"{command['type']} refused: {result}")
            result = result["value"]
        if command["type"] == "plan.apply" and result["placed"] != len(command["allocations"]):
            raise AssertionError(f"the plan applier refused a placement: {result}")
