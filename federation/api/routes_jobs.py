"""Jobs and their allocations."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.acl.authorizer import Need
from federation.api.acl import check, record_namespace, require, visibility
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import json_off_loop
from federation.api.views import job_view
from federation.errors import NotFound
from federation.scheduler.service import preview
from federation.specs.job import JobSpec, validate_job

router = APIRouter()
SUBMIT = Need("namespace", "submit-job")
LIST = Need("namespace", "list-jobs")
READ = Need("namespace", "read-job")


@router.post("/v1/jobs", status_code=201, tags=["jobs"], dependencies=[Depends(require(SUBMIT))],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def submit(request: Request) -> dict[str, Any]:
    """Create or update a job. A spec identical to the current one creates no new version."""
    spec = validate_job(await document(request))
    check(request, SUBMIT, namespace=record_namespace({"spec": spec}))
    value = await master(request).commit(
        {"type": "job.register", "id": command_id(request, "job"), "spec": spec})
    return {"id": value["id"], "version": value["version"], "index": value["index"]}


@router.post("/v1/jobs/plan", tags=["jobs"], dependencies=[Depends(require(SUBMIT))],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def plan(request: Request) -> dict[str, Any]:
    """What submitting this spec would place where, and what would stay unplaced and why.
    Nothing is committed."""
    spec = validate_job(await document(request))
    check(request, SUBMIT, namespace=record_namespace({"spec": spec}))
    machine = master(request).machine
    # Planning scores the whole pool: a worker thread's work, not the event loop's.
    return await json_off_loop(lambda: _plan(machine, spec))  # type: ignore[return-value]


def _plan(machine: Any, spec: dict[str, Any]) -> dict[str, Any]:
    existing = machine.jobs.get(spec["id"])
    changed = existing is None or existing["spec"] != spec or existing["stopped"]
    version = (existing["version"] + (1 if changed else 0)) if existing else 1
    job = {"id": spec["id"], "spec": spec, "version": version, "stopped": False,
           "create_index": machine.index + 1}
    # The leader's pass's own steps: dependencies, expired drains, quotas, the profile.
    outcome = preview(machine, job, time.time())
    if outcome.plan is None:
        return {"id": spec["id"], "version": version, "placements": [], "stops": [],
                "evictions": [], "unplaced": {"*": {"explanation": outcome.blocked,
                                                    "unplaced": 0}}}
    result = outcome.plan
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


@router.get("/v1/jobs", tags=["jobs"], dependencies=[Depends(require(LIST))])
async def list_jobs(request: Request, response: Response,
                    consistent: bool = False) -> list[dict[str, Any]]:
    await before_read(request, consistent)
    machine = master(request).machine
    may = visibility(request)

    def view() -> list[dict[str, Any]]:
        jobs = sorted((j for j in list(machine.jobs.values()) if may(j, "list-jobs")),
                      key=lambda j: j["id"])
        return [job_view(machine, job) for job in jobs]

    return await json_off_loop(  # type: ignore[return-value]
        view, headers={"X-Federation-Index": str(machine.index)})


@router.get("/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(require(READ))])
async def get_job(request: Request, job_id: str, consistent: bool = False) -> dict[str, Any]:
    await before_read(request, consistent)
    machine = master(request).machine
    job = machine.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    check(request, READ, namespace=record_namespace(job))
    return job_view(machine, job)


@router.delete("/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(require(SUBMIT))])
async def stop_job(request: Request, job_id: str) -> dict[str, Any]:
    """Stop a job: it is kept (status dead) and its allocations are told to stop."""
    job = master(request).machine.jobs.get(job_id)
    if job is not None:
        check(request, SUBMIT, namespace=record_namespace(job))
    value = await master(request).commit(
        {"type": "job.deregister", "id": command_id(request, f"stop:{job_id}"),
         "job_id": job_id})
    return {"id": value["id"], "version": value["version"], "index": value["index"]}


@router.get("/v1/allocations", tags=["allocations"], dependencies=[Depends(require(READ))])
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
    may = visibility(request)

    def view() -> list[dict[str, Any]]:
        if job is not None:
            ids = list(machine.alloc_ids_by_job.get(job, ()))
            allocs = [machine.allocations[i] for i in ids if i in machine.allocations]
        else:
            allocs = list(machine.allocations.values())
        if node is not None:
            allocs = [a for a in allocs if a["node_id"] == node]
        allocs = [a for a in allocs if may(machine.jobs.get(a["job_id"]), "read-job")]
        return sorted(allocs, key=lambda a: (a["job_id"], a["group"], a.get("index", 0), a["id"]))

    return await json_off_loop(  # type: ignore[return-value]
        view, headers={"X-Federation-Index": str(machine.index)})
