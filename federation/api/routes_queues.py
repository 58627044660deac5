"""Fair-share queues: weights, quotas, and what each queue uses now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from federation.acl.authorizer import Need
from federation.api.acl import require
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import json_off_loop
from federation.errors import ValidationError
from federation.scheduler import snapshot as snap
from federation.scheduler.fairshare import dominant_share
from federation.scheduler.order import capacity, queue_usage
from federation.specs.queue import QueueSpec, validate_queue

router = APIRouter(tags=["queues"])
READ = [Depends(require(Need("queue", "read")))]
WRITE = [Depends(require(Need("queue", "write")))]


@router.put("/v1/queues/{name}", dependencies=WRITE, openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": QueueSpec.model_json_schema()}}, "required": True}})
async def apply_queue(request: Request, name: str) -> dict[str, Any]:
    """Create or replace a queue: ``{"weight": 2, "quota": {"cpu": 8000, "memory": 16384}}``."""
    body = await document(request)
    if isinstance(body, dict) and "name" not in body:
        body = {"name": name, **body}
    spec = validate_queue(body)
    if spec["name"] != name:
        raise ValidationError(
            f"the spec names queue {spec['name']!r} but the path names {name!r}", field="name")
    return await master(request).commit(
        {"type": "queue.apply", "id": command_id(request, f"queue:{name}"), "spec": spec})


@router.delete("/v1/queues/{name}", dependencies=WRITE)
async def delete_queue(request: Request, name: str) -> dict[str, Any]:
    return await master(request).commit(
        {"type": "queue.delete", "id": command_id(request, f"queue-delete:{name}"),
         "name": name})


@router.get("/v1/queues", dependencies=READ)
async def list_queues(request: Request, consistent: bool = False) -> list[dict[str, Any]]:
    """Every queue in use or configured, with weight, quota, usage and dominant share."""
    await before_read(request, consistent)
    machine = master(request).machine
    # A pass over every job and allocation: a worker thread's work, not the event loop's.
    return await json_off_loop(lambda: queue_views(machine))  # type: ignore[return-value]


def queue_views(machine: Any) -> list[dict[str, Any]]:
    """Every queue in use or configured, with its usage (shared with the web UI)."""
    snapshot = snap.take(machine)
    queue_of = {j["id"]: j["spec"].get("queue", "default") for j in list(machine.jobs.values())}
    usage = queue_usage(snapshot, queue_of)
    total = capacity(snapshot)
    configured = {name: record["spec"] for name, record in list(machine.queues.items())}
    pending: dict[str, int] = {}
    for job in list(machine.jobs.values()):
        if job.get("unplaced") and not job["stopped"]:
            name = job["spec"].get("queue", "default")
            pending[name] = pending.get(name, 0) + 1
    names = sorted(set(configured) | set(usage) | set(pending) | {"default"})
    out = []
    for name in names:
        spec = configured.get(name, {"name": name, "weight": 1.0, "quota": None})
        used = usage.get(name, snap.ResourceTotals())
        out.append({
            "name": name, "weight": spec["weight"], "quota": spec["quota"],
            "configured": name in configured,
            "usage": {"cpu": used.cpu_milli, "memory": used.memory_mib,
                      "gpu": used.gpu_milli / 1000},
            "dominant_share": round(dominant_share(used, total, spec["weight"]), 6),
            "jobs_waiting": pending.get(name, 0),
        })
    return out
