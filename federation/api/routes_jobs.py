"""Jobs and their allocations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.api.auth import require_token
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import json_off_loop
from federation.api.views import job_view
from federation.errors import NotFound, ValidationError
from federation.scheduler.jobplan import plan_work
from federation.scheduler.reconcile import reconcile_job
from federation.scheduler.snapshot import take as take_snapshot
from federation.scheduler.workload import pass_profile
from federation.specs.job import JobSpec, validate_job

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/v1/jobs", status_code=201, tags=["jobs"],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def submit(request: Request) -> dict[str, Any]:
    """Create or update a job. A spec identical to the current one creates no new version."""
    spec = validate_job(await document(request))
    value = await master(request).commit(
        {"type": "job.register", "id": command_id(request, "job"), "spec": spec})
    return {"id": value["id"], "version": value["version"], "index": value["index"]}


@router.post("/v1/jobs/plan", tags=["jobs"],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def plan(request: Request) -> dict[str, Any]:
    """What submitting this spec would place where, and what would stay unplaced and why.
    Nothing is committed."""
    spec = validate_job(await document(request))
    machine = master(request).machine
    # Planning scores the whole pool: a worker thread's work, not the event loop's.
    return await json_off_loop(lambda: _plan(machine, spec))  # type: ignore[return-value]


def _plan(machine: Any, spec: dict[str, Any]) -> dict[str, Any]:
    existing = machine.jobs.get(spec["id"])
    changed = existing is None or existing["spec"] != spec or existing["stopped"]
    version = (existing["version"] + (1 if changed else 0)) if existing else 1
    job = {"id": spec["id"], "spec": spec, "version": version, "stopped": False}
    snapshot = take_snapshot(machine)
    work = reconcile_job(job, snapshot.by_job.get(spec["id"], ()), snapshot.draining)
    result = plan_work(snapshot, job, work, profile=pass_profile(snapshot, [(job, work)]))
    names = {n["id"]: n["name"] for n in list(machine.nodes.values())}
    return {
        "id": spec["id"],
        "version": version,
        "placements": [{"group": a["group"], "index": a["index"], "node_id": a["node_id"],
                        "node": names.get(a["node_id"]),
                        "gpu_devices": a["resources"]["gpu_devices"]}
                       for a in result.allocations],
        "stops": result.stops,
        "evictions": [{"allocation_id": e.allocation_id, "node_id": e.node_id,
                       "priority": e.priority} for e in result.evictions],
        "unplaced": result.unplaced,
    }


@router.get("/v1/jobs", tags=["jobs"])
async def list_jobs(request: Request, response: Response,
                    consistent: bool = False) -> list[dict[str, Any]]:
    await before_read(request, consistent)
    machine = master(request).machine

    def view() -> list[dict[str, Any]]:
        jobs = sorted(list(machine.jobs.values()), key=lambda j: j["id"])
        return [job_view(machine, job) for job in jobs]

    return await json_off_loop(  # type: ignore[return-value]
        view, headers={"X-Federation-Index": str(machine.index)})


@router.get("/v1/jobs/{job_id}", tags=["jobs"])
async def get_job(request: Request, job_id: str, consistent: bool = False) -> dict[str, Any]:
    await before_read(request, consistent)
    machine = master(request).machine
    job = machine.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job_view(machine, job)


@router.delete("/v1/jobs/{job_id}", tags=["jobs"])
async def stop_job(request: Request, job_id: str) -> dict[str, Any]:
    """Stop a job: it is kept (status dead) and its allocations are told to stop."""
    value = await master(request).commit(
        {"type": "job.deregister", "id": command_id(request, f"stop:{job_id}"),
         "job_id": job_id})
    return {"id": value["id"], "version": value["version"], "index": value["index"],
            "changed": value["changed"]}


def scaled_spec(spec: dict[str, Any], group: str, count: Any) -> dict[str, Any]:
    """The job spec with one group's count changed, validated like a submitted spec."""
    if not isinstance(count, int) or isinstance(count, bool):
        raise ValidationError("count must be a whole number", field="count")
    names = [g["name"] for g in spec["groups"]]
    if group not in names:
        raise NotFound(f"no group {group!r} in job {spec['id']!r} (groups: {', '.join(names)})",
                       field="group")
    groups = [{**g, "count": count} if g["name"] == group else g for g in spec["groups"]]
    return validate_job({**spec, "groups": groups})


@router.post("/v1/jobs/{job_id}/scale", tags=["jobs"])
async def scale_job(request: Request, job_id: str) -> dict[str, Any]:
    """Set one group's count: ``{"group": "web", "count": 5}``. A new job version, as
    submitting the edited spec would make."""
    body = await document(request)
    if not isinstance(body, dict) or set(body) - {"group", "count"} or "count" not in body:
        raise ValidationError('the body is {"group": NAME, "count": N}', field="count")
    m = master(request)
    job = m.machine.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    group = body.get("group") or (job["spec"]["groups"][0]["name"]
                                  if len(job["spec"]["groups"]) == 1 else None)
    if not isinstance(group, str):
        raise ValidationError("the job has several groups: name one", field="group")
    spec = scaled_spec(job["spec"], group, body["count"])
    value = await m.commit({"type": "job.register", "id": command_id(request, "job"),
                            "spec": spec})
    return {"id": value["id"], "version": value["version"], "index": value["index"],
            "group": group, "count": body["count"]}


@router.get("/v1/allocations", tags=["allocations"])
async def list_allocations(
    request: Request, response: Response,
    job: str | None = Query(default=None, description="only this job's allocations"),
    node: str | None = Query(default=None, description="only allocations on this node"),
    consistent: bool = False,
    index: int | None = Query(default=None, ge=0, description=(
        "blocking query: answer once the state index is above this (see X-Federation-Index)")),
    wait: float = Query(default=30.0, gt=0, le=300, description="blocking query timeout, s"),
) -> list[dict[str, Any]]:
    await before_read(request, consistent)
    if index is not None:
        await master(request).wait_for_index(index, wait)
    machine = master(request).machine

    def view() -> list[dict[str, Any]]:
        if job is not None:
            ids = list(machine.alloc_ids_by_job.get(job, ()))
            allocs = [machine.allocations[i] for i in ids if i in machine.allocations]
        else:
            allocs = list(machine.allocations.values())
        if node is not None:
            allocs = [a for a in allocs if a["node_id"] == node]
        return sorted(allocs, key=lambda a: (a["job_id"], a["group"], a.get("index", 0), a["id"]))

    return await json_off_loop(  # type: ignore[return-value]
        view, headers={"X-Federation-Index": str(machine.index)})


@router.get("/v1/allocations/{alloc_id}", tags=["allocations"])
async def get_allocation(request: Request, alloc_id: str,
                         consistent: bool = False) -> dict[str, Any]:
    """One allocation, with why it ended (``message``, ``exit_code``) and its node's name."""
    await before_read(request, consistent)
    machine = master(request).machine
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    node = machine.nodes.get(alloc["node_id"]) or {}
    return {**alloc, "node_name": node.get("name")}


@router.post("/v1/allocations/{alloc_id}/stop", tags=["allocations"])
async def stop_allocation(request: Request, alloc_id: str) -> dict[str, Any]:
    """Stop one allocation. As in Nomad, a job that still wants it gets a replacement placed
    by the scheduler (so this is also how to restart one copy elsewhere)."""
    m = master(request)
    alloc = m.machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    if alloc["desired_status"] != "run":
        return {"id": alloc_id, "changed": False, "index": m.machine.index}
    await m.commit({"type": "alloc.upsert", "id": command_id(request, f"alloc-stop:{alloc_id}"),
                    "allocations": [{"id": alloc_id, "job_id": alloc["job_id"],
                                     "group": alloc["group"], "node_id": alloc["node_id"],
                                     "desired_status": "stop"}]})
    return {"id": alloc_id, "changed": True, "index": m.machine.index}
