"""Jobs and their allocations."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.acl.authorizer import Need
from federation.api.acl import check, record_namespace, require, visibility
from federation.api.deps import before_read, command_id, document, master
from federation.api.kube.manifests import (
    Invalid,
    is_manifest,
    namespace_of,
    stored_manifest,
    translate,
)
from federation.api.kube.objects import iso
from federation.api.offload import encode_small, json_off_loop
from federation.api.pages import LimitQuery, NextQuery, decode_token, page
from federation.api.views import alloc_view, job_view, versions_view
from federation.errors import NotFound, ValidationError
from federation.scheduler.service import preview
from federation.specs.job import JobSpec, validate_job
from federation.specs.namespace import (
    job_key,
    read_scope,
    split_key,
    to_external,
    to_internal,
    write_scope,
)

router = APIRouter()
SUBMIT = Need("namespace", "submit-job")
LIST = Need("namespace", "list-jobs")
READ = Need("namespace", "read-job")
ALLOC_LIFECYCLE = Need("namespace", "alloc-lifecycle")

def manifest_submission(manifest: Any, namespace: str | None
                        ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """A Kubernetes workload manifest as (stored spec, manifest, suspended)."""
    try:
        if manifest.get("kind") == "Namespace":
            raise Invalid("kind", "a Namespace is not a job: apply it with kubectl")
        ns = namespace_of(manifest, None if namespace is None else write_scope(namespace))
        workload = translate(manifest, ns)
    except Invalid as exc:
        raise ValidationError(exc.message, field=exc.field) from None
    return to_internal(validate_job(workload.spec)), manifest, workload.suspend


NamespaceQuery = Query(default=None, description=(
    "the job's namespace (default `default`); on list reads `*` means every namespace"))


def spec_in_namespace(document: object, namespace: str | None) -> dict[str, object]:
    """Validate a submitted spec and key it for the state. ``?namespace=`` and a
    ``namespace`` in the body must agree when both are given."""
    if is_manifest(document):
        return manifest_submission(document, namespace)[0]
    spec = validate_job(document)
    given = document.get("namespace") if isinstance(document, dict) else None
    if namespace is not None and given is not None and given != write_scope(namespace):
        raise ValidationError(
            f"the spec's namespace {given!r} does not match ?namespace={namespace}",
            field="namespace")
    if namespace is not None:
        spec["namespace"] = write_scope(namespace)
    return to_internal(spec)


@router.post("/v1/jobs", status_code=201, tags=["jobs"], dependencies=[Depends(require(SUBMIT))],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def submit(request: Request, namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """Create or update a job. A spec identical to the current one creates no new version.
    A Kubernetes Deployment, Job or CronJob manifest is accepted too (as ``/k8s`` takes it)."""
    body = await document(request)
    command: dict[str, Any] = {"type": "job.register", "id": command_id(request, "job")}
    if is_manifest(body):
        spec, manifest, suspend = manifest_submission(body, namespace)
        check(request, SUBMIT, namespace=record_namespace({"spec": spec}))
        existing = master(request).machine.jobs.get(spec["id"]) or {}
        created = ((existing.get("manifest") or {}).get("metadata") or {}).get(
            "creationTimestamp") if not existing.get("stopped") else None
        command.update(manifest=stored_manifest(
            manifest, spec["namespace"], created or iso(time.time())), suspend=suspend)
    else:
        spec = spec_in_namespace(body, namespace)
        check(request, SUBMIT, namespace=record_namespace({"spec": spec}))
    value = await master(request).commit({**command, "spec": spec})
    ns, job_id = split_key(value["id"])
    return {"id": job_id, "namespace": ns, "version": value["version"],
            "index": value["index"]}


@router.post("/v1/jobs/plan", tags=["jobs"], dependencies=[Depends(require(SUBMIT))],
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": JobSpec.model_json_schema()},
                 "application/yaml": {"schema": JobSpec.model_json_schema()}},
                 "required": True}})
async def plan(request: Request, namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """What submitting this spec would place where, and what would stay unplaced and why.
    Nothing is committed."""
    spec = spec_in_namespace(await document(request), namespace)
    check(request, SUBMIT, namespace=record_namespace({"spec": spec}))
    m = master(request)
    machine = m.machine
    # The seed of the leader's next pass, when this server leads: the same sampling.
    seed = m.scheduler.passes + 1 if m.scheduler is not None else 0
    # Planning scores the whole pool: a worker thread's work, not the event loop's.
    return await json_off_loop(lambda: _plan(machine, spec, seed))  # type: ignore[return-value]


def _plan(machine: Any, spec: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    existing = machine.jobs.get(spec["id"])
    changed = existing is None or existing["spec"] != spec or existing["stopped"]
    version = (existing["version"] + (1 if changed else 0)) if existing else 1
    job = {"id": spec["id"], "spec": spec, "version": version, "stopped": False,
           "create_index": machine.index + 1}
    # The leader's pass's own steps: dependencies, expired drains, quotas, the profile.
    outcome = preview(machine, job, time.time(), seed)
    if outcome.plan is None:
        return {"id": spec["id"], "version": version, "placements": [], "stops": [],
                "evictions": [], "unplaced": {"*": {"explanation": outcome.blocked,
                                                    "unplaced": 0}}}
    result = outcome.plan
    names = {n["id"]: n["name"] for n in list(machine.nodes.values())}
    return {
        "id": split_key(spec["id"])[1],
        "namespace": spec["namespace"],
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
async def list_jobs(request: Request, response: Response, consistent: bool = False,
                    namespace: str | None = NamespaceQuery,
                    limit: int | None = LimitQuery,
                    next: str | None = NextQuery) -> list[dict[str, Any]]:
    scope = read_scope(namespace)
    start = decode_token(next, (str, str)) if next is not None else None
    await before_read(request, consistent)
    machine = master(request).machine
    may = visibility(request)
    headers = {"X-Federation-Index": str(machine.index)}

    def view() -> list[dict[str, Any]]:
        jobs = sorted((j for j in list(machine.jobs.values())
                       if (scope is None or split_key(j["id"])[0] == scope)
                       and may(j, "list-jobs")),
                      key=lambda j: split_key(j["id"]))
        chosen = page(jobs, lambda j: split_key(j["id"]), limit, start, headers)
        return [job_view(machine, job) for job in chosen]

    return await json_off_loop(view, headers=headers)  # type: ignore[return-value]


@router.get("/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(require(READ))])
async def get_job(request: Request, job_id: str, consistent: bool = False,
                  namespace: str | None = NamespaceQuery,
                  index: int | None = Query(default=None, ge=0, description=(
                      "blocking query: answer once this job or its allocations changed "
                      "after this index (see X-Federation-Index)")),
                  wait: float = Query(default=30.0, gt=0, le=300,
                                      description="blocking query timeout, s"),
                  ) -> dict[str, Any]:
    ns = write_scope(namespace)
    key = job_key(ns, job_id)
    await before_read(request, consistent)
    m = master(request)
    if m.machine.jobs.get(key) is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    check(request, READ, namespace=record_namespace(m.machine.jobs[key]))
    keys = (f"job:{key}", f"job-allocs:{key}")
    if index is not None:
        await m.wait_for_change(keys, index, wait)
    machine = m.machine
    at = max(machine.watch_index_of(*keys), 1)
    job = machine.jobs.get(key)
    if job is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    return Response(encode_small(job_view(machine, job)),  # type: ignore[return-value]
                    media_type="application/json", headers={"X-Federation-Index": str(at)})


@router.delete("/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(require(SUBMIT))])
async def stop_job(request: Request, job_id: str,
                   namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """Stop a job: it is kept (status dead) and its allocations are told to stop."""
    ns = write_scope(namespace)
    key = job_key(ns, job_id)
    job = master(request).machine.jobs.get(key)
    if job is not None:
        check(request, SUBMIT, namespace=record_namespace(job))
    value = await master(request).commit(
        {"type": "job.deregister", "id": command_id(request, f"stop:{key}"), "job_id": key})
    return {"id": job_id, "namespace": ns, "version": value["version"],
            "index": value["index"], "changed": value["changed"]}


@router.get("/v1/jobs/{job_id}/versions", tags=["jobs"], dependencies=[Depends(require(READ))])
async def job_versions_route(request: Request, job_id: str, consistent: bool = False,
                             namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """The job's kept versions, the current one first: each with its spec, when it was
    submitted, whether it was stopped, and the fields it changed from the one before."""
    ns = write_scope(namespace)
    await before_read(request, consistent)
    job = master(request).machine.jobs.get(job_key(ns, job_id))
    if job is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    check(request, READ, namespace=record_namespace(job))
    return {"id": job_id, "namespace": ns, "versions": versions_view(job)}


@router.post("/v1/jobs/{job_id}/revert", tags=["jobs"], dependencies=[Depends(require(SUBMIT))])
async def revert_job(request: Request, job_id: str,
                     namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """Submit a kept earlier version again: ``{"version": N}``. A new version whose spec is
    version N's (the versions between are kept in the history)."""
    body = await document(request)
    if not isinstance(body, dict) or set(body) - {"version"} or "version" not in body:
        raise ValidationError('the body is {"version": N}', field="version")
    version = body["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError("version must be a whole number, at least 1", field="version")
    m = master(request)
    ns = write_scope(namespace)
    key = job_key(ns, job_id)
    job = m.machine.jobs.get(key)
    if job is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    check(request, SUBMIT, namespace=record_namespace(job))
    value = await m.commit({"type": "job.revert", "id": command_id(request, f"revert:{key}"),
                            "job_id": key, "version": version})
    return {"id": job_id, "namespace": ns, "version": value["version"],
            "reverted_to": value["reverted_to"], "changed": value["changed"],
            "index": value["index"]}


def scaled_spec(spec: dict[str, Any], group: str, count: Any) -> dict[str, Any]:
    """The job spec with one group's count changed, validated like a submitted spec."""
    if not isinstance(count, int) or isinstance(count, bool):
        raise ValidationError("count must be a whole number", field="count")
    names = [g["name"] for g in spec["groups"]]
    if group not in names:
        raise NotFound(f"no group {group!r} in job {spec['id']!r} (groups: {', '.join(names)})",
                       field="group")
    groups = [{**g, "count": count} if g["name"] == group else g for g in spec["groups"]]
    return to_internal(validate_job({**spec, "groups": groups}))


@router.post("/v1/jobs/{job_id}/scale", tags=["jobs"], dependencies=[Depends(require(SUBMIT))])
async def scale_job(request: Request, job_id: str,
                    namespace: str | None = NamespaceQuery) -> dict[str, Any]:
    """Set one group's count: ``{"group": "web", "count": 5}``. A new job version, as
    submitting the edited spec would make."""
    body = await document(request)
    if not isinstance(body, dict) or set(body) - {"group", "count"} or "count" not in body:
        raise ValidationError('the body is {"group": NAME, "count": N}', field="count")
    m = master(request)
    ns = write_scope(namespace)
    job = m.machine.jobs.get(job_key(ns, job_id))
    if job is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    check(request, SUBMIT, namespace=record_namespace(job))
    group = body.get("group") or (job["spec"]["groups"][0]["name"]
                                  if len(job["spec"]["groups"]) == 1 else None)
    if not isinstance(group, str):
        raise ValidationError("the job has several groups: name one", field="group")
    spec = scaled_spec(to_external(job["spec"]), group, body["count"])
    value = await m.commit({"type": "job.register", "id": command_id(request, "job"),
                            "spec": spec})
    return {"id": job_id, "namespace": ns, "version": value["version"],
            "index": value["index"], "group": group, "count": body["count"]}


@router.get("/v1/allocations", tags=["allocations"], dependencies=[Depends(require(READ))])
async def list_allocations(
    request: Request, response: Response,
    job: str | None = Query(default=None, description="only this job's allocations"),
    node: str | None = Query(default=None, description="only allocations on this node"),
    consistent: bool = False,
    namespace: str | None = NamespaceQuery,
    index: int | None = Query(default=None, ge=0, description=(
        "blocking query: answer once the state index is above this (see X-Federation-Index)")),
    wait: float = Query(default=30.0, gt=0, le=300, description="blocking query timeout, s"),
    limit: int | None = LimitQuery,
    next: str | None = NextQuery,
) -> list[dict[str, Any]]:
    """Allocations, sorted by job, group, index and id. With ``job`` or ``node`` given, a
    blocking query (``index``) wakes only for changes to that job's (or node's)
    allocations, and ``X-Federation-Index`` is the index of their last change."""
    scope = read_scope(namespace)
    if job is not None and scope is None:
        raise ValidationError("a job is named within one namespace, not '*'", field="namespace")
    start = decode_token(next, (str, str, int, str)) if next is not None else None
    await before_read(request, consistent)
    m = master(request)
    keys: tuple[str, ...] = ()
    if node is not None:
        keys = (f"node-allocs:{node}",)
    elif job is not None and scope is not None:
        keys = (f"job-allocs:{job_key(scope, job)}",)
    if index is not None:
        if keys:
            await m.wait_for_change(keys, index, wait)
        else:
            await m.wait_for_index(index, wait)
    machine = m.machine
    at = max(machine.watch_index_of(*keys), 1) if keys else machine.index
    headers = {"X-Federation-Index": str(at)}
    may = visibility(request)

    wanted_job = job_key(scope, job) if job is not None and scope is not None else None

    def view() -> list[dict[str, Any]]:
        if node is not None or wanted_job is not None:
            ids = list(machine.alloc_ids_by_node.get(node, ()) if node is not None
                       else machine.alloc_ids_by_job.get(wanted_job, ()))
            allocs = [a for a in (machine.allocations.get(i) for i in ids) if a is not None]
            if wanted_job is not None:
                allocs = [a for a in allocs if a["job_id"] == wanted_job]
            elif scope is not None:
                allocs = [a for a in allocs if split_key(a["job_id"])[0] == scope]
        else:
            allocs = [a for a in list(machine.allocations.values())
                      if scope is None or split_key(a["job_id"])[0] == scope]
        allocs = [a for a in allocs if may(machine.jobs.get(a["job_id"]), "read-job")]
        allocs.sort(key=_alloc_order)
        return [alloc_view(a) for a in page(allocs, _alloc_order, limit, start, headers)]

    return await json_off_loop(view, headers=headers)  # type: ignore[return-value]


def _alloc_order(alloc: dict[str, Any]) -> tuple[str, str, int, str]:
    return (alloc["job_id"], alloc["group"], alloc.get("index", 0), alloc["id"])


@router.get("/v1/allocations/{alloc_id}", tags=["allocations"],
            dependencies=[Depends(require(READ))])
async def get_allocation(request: Request, alloc_id: str,
                         consistent: bool = False) -> dict[str, Any]:
    """One allocation, with why it ended (``message``, ``exit_code``) and its node's name."""
    await before_read(request, consistent)
    machine = master(request).machine
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    check(request, READ, namespace=record_namespace(machine.jobs.get(alloc["job_id"])))
    node = machine.nodes.get(alloc["node_id"]) or {}
    return {**alloc, "node_name": node.get("name")}


@router.post("/v1/allocations/{alloc_id}/stop", tags=["allocations"],
             dependencies=[Depends(require(ALLOC_LIFECYCLE))])
async def stop_allocation(request: Request, alloc_id: str) -> dict[str, Any]:
    """Stop one allocation. As in Nomad, a job that still wants it gets a replacement placed
    by the scheduler (so this is also how to restart one copy elsewhere)."""
    m = master(request)
    alloc = m.machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    check(request, ALLOC_LIFECYCLE, namespace=record_namespace(m.machine.jobs.get(alloc["job_id"])))
    if alloc["desired_status"] != "run":
        return {"id": alloc_id, "changed": False, "index": m.machine.index}
    await m.commit({"type": "alloc.stop", "id": command_id(request, f"alloc-stop:{alloc_id}"),
                    "alloc_ids": [alloc_id], "reason": "stopped through the API"})
    return {"id": alloc_id, "changed": True, "index": m.machine.index}
