"""What changed in the cluster since a state index, as events: a pure function of the state.

The state keeps records, not a history, so an event describes a record as it is now: a
record changed twice between two reads appears once, in its latest state. Each event carries
the ``index`` of that change; asking again from the highest index seen gives what changed
after it (no change is missed, intermediate states may be merged).
"""

from __future__ import annotations

from typing import Any

from federation.state.machine import StateMachine

TOPICS = ("job", "allocation", "node")


def changes_since(machine: StateMachine, index: int, topics: frozenset[str] = frozenset(TOPICS),
                  limit: int = 1000) -> list[dict[str, Any]]:
    """Events of records changed after ``index``, oldest first, at most ``limit``."""
    events: list[dict[str, Any]] = []
    if "job" in topics:
        for job in list(machine.jobs.values()):
            if job.get("modify_index", 0) > index:
                # Placements also touch the record; the version says what the user did.
                what = ("stopped" if job["stopped"] else "registered" if job["version"] == 1
                        else "updated")
                events.append({"index": job["modify_index"], "topic": "job", "id": job["id"],
                               "type": f"job.{what}", "version": job["version"],
                               "status": machine.job_status(job)})
    if "allocation" in topics:
        for alloc in list(machine.allocations.values()):
            if alloc.get("modify_index", 0) > index:
                events.append({
                    "index": alloc["modify_index"], "topic": "allocation", "id": alloc["id"],
                    "type": f"allocation.{alloc['client_status']}", "job_id": alloc["job_id"],
                    "node_id": alloc["node_id"], "desired_status": alloc["desired_status"],
                    "client_status": alloc["client_status"],
                    "message": alloc.get("message") or ""})
    if "node" in topics:
        for node in list(machine.nodes.values()):
            if node.get("modify_index", 0) > index:
                state = "draining" if node.get("draining") else node["status"]
                events.append({"index": node["modify_index"], "topic": "node",
                               "id": node["id"], "name": node["name"],
                               "type": f"node.{state}", "status": node["status"],
                               "draining": node.get("draining", False)})
    events.sort(key=lambda e: (e["index"], e["topic"], e["id"]))
    return events[:limit]
