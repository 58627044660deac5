"""The Kubernetes API subset every server serves under ``/k8s``: HTTP in, the same commands
as ``/v1`` out.

One route takes every path under the prefix and dispatches on its segments the way the
API server lays them out (``/api/v1/namespaces/NS/pods/NAME/log``,
``/apis/apps/v1/namespaces/NS/deployments/NAME/scale``). Writes validate the manifest
(``manifests.translate``), then commit ``job.register``/``job.deregister``/``namespace.*`` or
``alloc.stop`` (deleting a pod stops its allocation) through Raft, like ``/v1`` does.
Errors are ``Status`` objects, the shape kubectl and the client libraries print.

Access follows the namespace capabilities of the caller's ACL token, as on ``/v1``:
``list-jobs`` to list or watch, ``read-job`` to get, ``submit-job`` to create, change or
delete a workload, ``scale`` for the scale subresource, ``read-logs`` for pod logs,
``alloc-lifecycle`` to delete a pod, and ``operator: write`` to create or delete namespaces.
A list across namespaces shows the namespaces the caller may list.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from federation.acl.authorizer import Need
from federation.api import routes_agent
from federation.api.acl import NEED_ATTRIBUTE, check, require, visibility
from federation.api.deps import command_id, master
from federation.api.kube import discovery, manifests, objects, protobuf, smp
from federation.api.kube.manifests import Invalid
from federation.api.kube.objects import View
from federation.errors import FederationError, ValidationError
from federation.specs.job import validate_job
from federation.specs.namespace import (
    DEFAULT_NAMESPACE,
    job_key,
    split_key,
    to_internal,
)

PREFIX = "/k8s"
MAX_MANIFEST_BYTES = 3 << 20  # the API server's own request limit is 3 MiB
WATCH_DEFAULT_SECONDS = 1800.0
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError",
            503: "ServiceUnavailable"}
PATCH_SCHEMAS = {"Deployment": smp.DEPLOYMENT, "Job": smp.JOB, "CronJob": smp.CRONJOB,
                 "Namespace": smp.NAMESPACE, "Pod": smp.POD}

_namespaced_caller = require(Need("namespaced"))


async def _caller(request: Request) -> None:
    """Resolve the caller (401/403 as a ``Status`` object, as kubectl expects); capability
    checks follow per request in ``_authorize``."""
    try:
        await _namespaced_caller(request)
    except FederationError as exc:
        raise _from_federation(exc) from None


setattr(_caller, NEED_ATTRIBUTE, Need("namespaced"))
router = APIRouter(dependencies=[Depends(_caller)], include_in_schema=False)

LIST = Need("namespace", "list-jobs")
READ = Need("namespace", "read-job")
SUBMIT = Need("namespace", "submit-job")
SCALE = Need("namespace", "scale")
READ_LOGS = Need("namespace", "read-logs")
ALLOC_LIFECYCLE = Need("namespace", "alloc-lifecycle")
NAMESPACE_ADMIN = Need("operator", "write")


class KubeError(Exception):
    """An answer as a ``Status`` object."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details


def status_body(code: int, message: str, reason: str, details: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure" if code >= 300 else "Success",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def _error_response(exc: KubeError) -> JSONResponse:
    return JSONResponse(status_body(exc.code, exc.message, exc.reason, exc.details),
                        status_code=exc.code)


def install(app: FastAPI) -> None:
    """Serve the Kubernetes endpoint on ``app``."""
    app.include_router(router)

    @app.exception_handler(KubeError)
    async def _kube(request: Request, exc: KubeError) -> JSONResponse:
        return _error_response(exc)


def _from_federation(exc: FederationError) -> KubeError:
    code = 422 if exc.http_status == 400 and exc.field else exc.http_status
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return KubeError(code, message)


def _invalid(kind: str, group: str, name: str | None, exc: Invalid) -> KubeError:
    qualified = f"{kind}.{group}" if group else kind
    return KubeError(422, f'{qualified} "{name or ""}" is invalid: {exc}', "Invalid", {
        "name": name or "", "group": group, "kind": kind,
        "causes": [{"reason": exc.reason, "message": exc.message, "field": exc.field}]})


# -- the state as objects --------------------------------------------------------------------
def _view(request: Request, namespace: str | None) -> View:
    machine = master(request).machine
    jobs = dict(machine.jobs)
    if namespace is None:  # across namespaces: only those the caller may list
        may = visibility(request)
        jobs = {key: job for key, job in jobs.items() if may(job, "list-jobs")}
    allocations = machine.allocations
    allocations_of: dict[str, list[Mapping[str, Any]]] = {}
    for key in jobs:
        if namespace is not None and split_key(key)[0] != namespace:
            continue
        ids = list(machine.alloc_ids_by_job.get(key, ()))
        allocations_of[key] = [allocations[i] for i in ids if i in allocations]
    return View(jobs=jobs, allocations_of=allocations_of, nodes=dict(machine.nodes),
                namespaces=dict(machine.namespaces), status_of=machine.job_status,
                now=time.time())


def _jobs_in(view: View, namespace: str | None, kind: str, *, deleted: bool = False
             ) -> list[Mapping[str, Any]]:
    """The jobs shown as ``kind`` (with ``deleted``, stopped ones too: their allocations
    may still be terminating)."""
    found = [job for key, job in view.jobs.items()
             if (namespace is None or split_key(key)[0] == namespace)
             and (deleted or objects.visible(job)) and objects.kind_of(job) == kind]
    return sorted(found, key=lambda j: split_key(j["id"]))


def _objects(view: View, resource: discovery.Resource, namespace: str | None
             ) -> list[dict[str, Any]]:
    if resource.kind == "Namespace":
        return [objects.namespace_object(view, n) for n in objects.namespace_names(view)]
    if resource.kind == "Pod":
        pods = []
        for kind in ("Deployment", "Job"):
            for job in _jobs_in(view, namespace, kind, deleted=True):
                pods.extend(objects.pods_of(view, job))
        return pods
    if resource.kind == "Event":
        events = []
        for kind in ("Deployment", "Job", "CronJob"):
            for job in _jobs_in(view, namespace, kind):
                owner = objects.workload(view, job)
                events += objects.events_for(job, owner, view.now)
                if kind != "CronJob":
                    for pod in objects.pods_of(view, job):
                        if pod["status"].get("phase") == "Pending" and \
                                "-unplaced-" in pod["metadata"]["name"]:
                            events += objects.events_for(job, pod, view.now)
        return events
    return [objects.workload(view, job) for job in _jobs_in(view, namespace, resource.kind)]


def _find_job(view: View, resource: discovery.Resource, namespace: str, name: str
              ) -> Mapping[str, Any] | None:
    job = view.jobs.get(job_key(namespace, name))
    if job is None or not objects.visible(job) or objects.kind_of(job) != resource.kind:
        return None
    return job


def _not_found(resource: discovery.Resource, name: str) -> KubeError:
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    return KubeError(404, f'{qualified} "{name}" not found', "NotFound",
                     {"name": name, "group": resource.group, "kind": resource.plural})


def _get_object(view: View, resource: discovery.Resource, namespace: str, name: str
                ) -> dict[str, Any]:
    if resource.kind == "Namespace":
        if name not in objects.namespace_names(view):
            raise _not_found(resource, name)
        return objects.namespace_object(view, name)
    if resource.kind in ("Pod", "Event"):
        for obj in _objects(view, resource, namespace):
            if obj["metadata"]["name"] == name:
                return obj
        raise _not_found(resource, name)
    job = _find_job(view, resource, namespace, name)
    if job is None:
        raise _not_found(resource, name)
    return objects.workload(view, job)


# -- selectors -------------------------------------------------------------------------------
def _field_value(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _matches(obj: Mapping[str, Any], label_selector: str | None, field_selector: str | None
             ) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif " in " in term or " notin " in term:
            raise KubeError(400, f"label selector {term!r}: set-based selectors are not "
                            "supported here")
        elif term not in labels:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        negate = "!=" in term
        key, value = term.replace("==", "=").split("!=" if negate else "=", 1)
        actual = _field_value(obj, key.strip())
        actual_text = "" if actual is None else str(actual)
        if (actual_text == value.strip()) == negate:
            return False
    return True


# -- request helpers -------------------------------------------------------------------------
def _wants_table(request: Request) -> bool:
    return "as=Table" in request.headers.get("accept", "")


def _list_kind(resource: discovery.Resource) -> str:
    return f"{resource.kind}List"


async def _body(request: Request) -> Any:
    # Read as a stream, keeping at most the limit: an oversized body is drained (the server's
    # body cap bounds it) and then refused, so the client reads the 413 instead of a reset.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_MANIFEST_BYTES:
            chunks.append(chunk)
    if size > MAX_MANIFEST_BYTES:
        raise KubeError(413, f"the request body is larger than {MAX_MANIFEST_BYTES} bytes "
                        "(the limit of one object)", "RequestEntityTooLarge")
    body = b"".join(chunks)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/vnd.kubernetes.protobuf":
        # kubectl's typed clients (`kubectl create namespace`) send built-in kinds this way.
        try:
            return protobuf.decode_object(body)
        except protobuf.ProtobufError as exc:
            raise KubeError(415, f"{exc}: send it as JSON or YAML (kubectl apply -f)",
                            "UnsupportedMediaType") from None
    if media == "application/cbor":
        raise KubeError(415, "CBOR bodies are not supported by this server (federation): "
                        "send JSON or YAML", "UnsupportedMediaType")
    if not body.strip():
        raise KubeError(400, "the request body is empty")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        content_type = request.headers.get("content-type", "")
        if "yaml" in content_type:
            import yaml

            try:
                return yaml.safe_load(body)
            except yaml.YAMLError as yexc:
                raise KubeError(400, f"invalid YAML: {yexc}") from None
        raise KubeError(400, f"the body is not valid JSON: {exc}") from None


def _dry_run(request: Request) -> bool:
    return request.query_params.get("dryRun") == "All"


async def _commit(request: Request, command: dict[str, Any], scope: str) -> Any:
    command = {**command, "id": command_id(request, scope), "time": time.time()}
    try:
        return await master(request).commit(command)
    except FederationError as exc:
        raise _from_federation(exc) from None


# -- writes ----------------------------------------------------------------------------------
def _with_type(manifest: Any, resource: discovery.Resource) -> Any:
    """The API server takes kind and apiVersion from the URL when a body leaves them out."""
    if isinstance(manifest, dict):
        return {"apiVersion": resource.group_version, "kind": resource.kind, **manifest}
    return manifest


async def _put_workload(request: Request, resource: discovery.Resource, namespace: str,
                        manifest: Any, *, create: bool, name: str | None = None
                        ) -> tuple[int, dict[str, Any]]:
    """Create or replace a Deployment, Job or CronJob; (HTTP status, object)."""
    manifest = _with_type(manifest, resource)
    try:
        _, kind = manifests.check_object(manifest)
        if kind != resource.kind:
            raise KubeError(400, f"the object is a {kind}, sent to {resource.plural}")
        object_name = manifests.check_name(manifest)
        if name is not None and object_name != name:
            raise Invalid("metadata.name", f"Invalid value: {object_name!r}: the name of the "
                          "object does not match the name on the URL")
        ns = manifests.namespace_of(manifest, namespace)
        check(request, SUBMIT, ns)
        workload = manifests.translate(manifest, ns)
    except Invalid as exc:
        raise _invalid(resource.kind, resource.group,
                       (manifest.get("metadata") or {}).get("name")
                       if isinstance(manifest, dict) else None, exc) from None
    try:
        spec = to_internal(validate_job(workload.spec))
    except ValidationError as exc:
        raise _invalid(resource.kind, resource.group, object_name, Invalid(
            f"spec (as a federation job: {exc.field or '-'})", exc.message)) from None
    view = _view(request, ns)
    key = job_key(ns, object_name)
    existing = view.jobs.get(key)
    shown = existing is not None and objects.visible(existing)
    if create and shown:
        assert existing is not None
        other = objects.kind_of(existing)
        taken = "" if other == kind else f" (by a {other}: one name per namespace)"
        raise KubeError(409, f'{resource.plural}.{resource.group} "{object_name}" already '
                        f"exists{taken}", "AlreadyExists",
                        {"name": object_name, "group": resource.group, "kind": resource.plural})
    if not create and (not shown or objects.kind_of(existing or {"spec": spec}) != kind):
        raise _not_found(resource, object_name)
    if not create and existing is not None:
        given = (manifest.get("metadata") or {}).get("resourceVersion")
        current = str(view.resource_version(existing))
        if given not in (None, "", current):
            raise KubeError(409, f'Operation cannot be fulfilled on {resource.plural}.'
                            f'{resource.group} "{object_name}": the object has been modified; '
                            "please apply your changes to the latest version and try again",
                            "Conflict")
    created = None
    if existing is not None and shown and isinstance(existing.get("manifest"), dict):
        created = existing["manifest"].get("metadata", {}).get("creationTimestamp")
    stored = manifests.stored_manifest(manifest, ns, created or objects.iso(time.time()))
    if _dry_run(request):
        preview = {"id": key, "spec": spec, "manifest": stored, "version": 1,
                   "stopped": workload.suspend, "suspended": workload.suspend,
                   "submit_time": time.time(), "create_index": 0, "modify_index": 0}
        return (201 if create else 200), objects.workload(view, preview)
    await _commit(request, {"type": "job.register", "spec": spec, "manifest": stored,
                            "suspend": workload.suspend}, f"k8s-job:{key}")
    return (201 if create else 200), _get_object(_view(request, ns), resource, ns, object_name)


async def _put_namespace(request: Request, manifest: Any, *, create: bool,
                         name: str | None = None) -> tuple[int, dict[str, Any]]:
    resource = discovery.find("", "v1", "namespaces")
    assert resource is not None
    manifest = _with_type(manifest, resource)
    try:
        manifests.check_object(manifest)
        object_name = manifests.check_name(manifest)
        if name is not None and object_name != name:
            raise Invalid("metadata.name", "the name of the object does not match the URL")
        meta = manifest.get("metadata") or {}
        labels = manifests._string_map(meta.get("labels"), "metadata.labels")
        annotations = manifests._string_map(meta.get("annotations"), "metadata.annotations")
    except Invalid as exc:
        raise _invalid("Namespace", "", (manifest.get("metadata") or {}).get("name")
                       if isinstance(manifest, dict) else None, exc) from None
    labels.pop("kubernetes.io/metadata.name", None)
    view = _view(request, object_name)
    exists = object_name in objects.namespace_names(view)
    if create and exists and object_name in view.namespaces:
        raise KubeError(409, f'namespaces "{object_name}" already exists', "AlreadyExists",
                        {"name": object_name, "kind": "namespaces"})
    if not create and not exists:
        raise _not_found(resource, object_name)
    if not _dry_run(request):
        await _commit(request, {"type": "namespace.apply", "name": object_name,
                                "labels": labels, "annotations": annotations},
                      f"k8s-ns:{object_name}")
    view = _view(request, object_name)
    obj = objects.namespace_object(view, object_name)
    if _dry_run(request):
        obj["metadata"]["labels"].update(labels)
        obj["metadata"]["annotations"] = annotations
    return (201 if create else 200), obj


def _patch_document(request: Request, current: dict[str, Any], patch: Any, kind: str
                    ) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        if content_type == "application/strategic-merge-patch+json":
            if not isinstance(patch, dict):
                raise smp.PatchError("a strategic merge patch must be a JSON object")
            return smp.apply_patch(current, patch, PATCH_SCHEMAS[kind])
        if content_type == "application/merge-patch+json":
            result = smp.merge_patch(current, patch)
        elif content_type == "application/json-patch+json":
            result = smp.json_patch(current, patch)
        elif content_type == "application/apply-patch+yaml":
            raise KubeError(415, "server-side apply is not supported by this server "
                            "(federation): apply without --server-side", "UnsupportedMediaType")
        else:
            raise KubeError(415, f"the patch type {content_type!r} is not supported: use "
                            "application/strategic-merge-patch+json, "
                            "application/merge-patch+json or application/json-patch+json",
                            "UnsupportedMediaType")
    except smp.PatchError as exc:
        raise KubeError(400, f"the patch cannot be applied: {exc}") from None
    if not isinstance(result, dict):
        raise KubeError(400, "the patched object is not an object")
    return result


def _editable(view: View, resource: discovery.Resource, namespace: str, name: str
              ) -> dict[str, Any]:
    """The object a patch applies to: the stored manifest with the server's metadata."""
    job = _find_job(view, resource, namespace, name)
    if job is None:
        raise _not_found(resource, name)
    obj = objects.workload(view, job)
    obj.pop("status", None)
    return obj


# -- dispatch --------------------------------------------------------------------------------
@router.api_route(PREFIX + "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def serve(request: Request, path: str) -> Response:
    try:
        return await _dispatch(request, [p for p in path.split("/") if p])
    except KubeError as exc:
        return _error_response(exc)
    except Invalid as exc:
        return _error_response(KubeError(422, str(exc), "Invalid", {
            "causes": [{"reason": exc.reason, "message": exc.message, "field": exc.field}]}))
    except FederationError as exc:
        return _error_response(_from_federation(exc))


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _dispatch(request: Request, parts: list[str]) -> Response:
    method = request.method
    if method == "GET" and parts == ["openapi", "v2"]:
        return _openapi_v2(request)
    if method == "GET":
        found = _discovery(parts)
        if found is not None:
            return _json(found)
    if parts[:1] == ["api"] and len(parts) >= 3 and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise KubeError(404, f"the server could not find the requested resource ({method} "
                        f"{PREFIX}/{'/'.join(parts)})", "NotFound")
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    resource = discovery.find(group, version, plural)
    if resource is None or len(rest) > 3:
        gv = f"{group}/{version}" if group else version
        raise KubeError(404, f"the server could not find the requested resource: {plural} "
                        f"in {gv} is not served by federation (served: deployments, jobs, "
                        "cronjobs, pods, namespaces, events)", "NotFound")
    if resource.namespaced and namespace is None and name is not None:
        raise KubeError(404, f"{plural} are namespaced: use /namespaces/NS/{plural}/{name}")
    if namespace is not None and not manifests.DNS_LABEL.match(namespace):
        raise KubeError(400, f"invalid namespace {namespace!r}")
    _authorize(request, resource, namespace, name, sub)
    if sub is not None:
        return await _subresource(request, resource, namespace or DEFAULT_NAMESPACE, name or "",
                                  sub)
    if name is None:
        if method == "GET":
            return await _list(request, resource, namespace)
        if method == "POST":
            return await _create(request, resource, namespace)
        raise KubeError(405, f"{method} is not allowed on a collection")
    ns = namespace or DEFAULT_NAMESPACE
    if method == "GET":
        view = _view(request, ns)
        obj = _get_object(view, resource, ns, name)
        if _wants_table(request):
            return _json(objects.table(resource.kind, [obj], view.now,
                                       obj["metadata"].get("resourceVersion", ""), view,
                                       request.query_params.get("includeObject", "Metadata")))
        return _json(obj)
    if method == "PUT":
        return await _replace(request, resource, ns, name)
    if method == "PATCH":
        return await _patch(request, resource, ns, name)
    if method == "DELETE":
        return await _delete(request, resource, ns, name)
    raise KubeError(405, f"{method} is not allowed")


def _authorize(request: Request, resource: discovery.Resource, namespace: str | None,
               name: str | None, sub: str | None) -> None:
    """Check the caller's capability for this verb on this resource before anything is read
    or parsed. A workload written through a collection without a namespace in the URL is
    checked again in the namespace its manifest names (``_put_workload``)."""
    method = request.method
    if resource.kind == "Namespace":
        if method != "GET":
            check(request, NAMESPACE_ADMIN)
        return
    if sub == "log":
        need = READ_LOGS
    elif sub == "scale" and method != "GET":
        need = SCALE
    elif method == "GET":
        need = READ if name is not None or sub is not None else LIST
    elif resource.kind == "Pod" and method == "DELETE":
        need = ALLOC_LIFECYCLE
    elif namespace is None and name is None:
        return  # a create through the all-namespaces collection: the manifest names it
    else:
        need = SUBMIT
    check(request, need, "*" if namespace is None and need is LIST else
          namespace or DEFAULT_NAMESPACE)


def _openapi_v2(request: Request) -> Response:
    """An OpenAPI v2 document with no definitions. kubectl fetches it only to validate a kind
    that the v3 documents do not list (the kinds served here are validated by the server,
    ``fieldValidation``); finding no schema it skips that step, and then reports the kind as
    unknown in its own words ("no matches for kind ..."). kubectl asks for protobuf."""
    if discovery.OPENAPI_V2_PROTOBUF in request.headers.get("accept", ""):
        # The answer's type without the '@' of the request's: Go's mime parser refuses it.
        return Response(discovery.openapi_v2_protobuf(),
                        media_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    return _json(discovery.openapi_v2())


def _discovery(parts: list[str]) -> dict[str, Any] | None:
    if parts == ["api"]:
        return discovery.api_versions()
    if parts == ["apis"]:
        return discovery.api_group_list()
    if parts == ["version"]:
        return discovery.version_info()
    if parts == ["api", "v1"]:
        return discovery.resource_list("", "v1")
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in discovery.GROUPS:
        return discovery.api_group(parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return discovery.resource_list(parts[1], parts[2])
    if parts == ["openapi", "v3"]:
        return discovery.openapi_root(PREFIX)
    if parts[:2] == ["openapi", "v3"]:
        rest = parts[2:]
        if rest[:1] == ["api"] and len(rest) == 2:
            found = discovery.openapi_document("", rest[1], PREFIX)
        elif rest[:1] == ["apis"] and len(rest) == 3:
            found = discovery.openapi_document(rest[1], rest[2], PREFIX)
        else:
            found = None
        if found is None:
            raise KubeError(404, f"no OpenAPI document for {'/'.join(rest)}", "NotFound")
        return found
    return None


async def _list(request: Request, resource: discovery.Resource, namespace: str | None
                ) -> Response:
    query = request.query_params
    if query.get("watch") in ("1", "true", "True"):
        return await _watch(request, resource, namespace)
    view = _view(request, namespace)
    found = [o for o in _objects(view, resource, namespace)
             if _matches(o, query.get("labelSelector"), query.get("fieldSelector"))]
    version = str(master(request).machine.index)
    if _wants_table(request):
        return _json(objects.table(resource.kind, found, view.now, version, view,
                                   query.get("includeObject", "Metadata")))
    return _json({"kind": _list_kind(resource), "apiVersion": resource.group_version,
                  "metadata": {"resourceVersion": version}, "items": found})


async def _watch(request: Request, resource: discovery.Resource, namespace: str | None
                 ) -> Response:
    """``?watch=1``: one JSON event a line (ADDED, MODIFIED, DELETED) as the state changes.

    No history is kept: from a given ``resourceVersion`` the stream starts with the objects
    changed since (a deletion before the watch began is not replayed); without one, or with
    ``sendInitialEvents=true`` (then followed by the bookmark that ends the initial events),
    it starts with every object ADDED, as the API server does."""
    query = request.query_params
    since_text = query.get("resourceVersion") or "0"
    since = int(since_text) if since_text.isdigit() else 0
    try:
        timeout = float(query.get("timeoutSeconds") or WATCH_DEFAULT_SECONDS)
    except ValueError:
        raise KubeError(400, "timeoutSeconds must be a number") from None
    table = _wants_table(request)
    initial_events = query.get("sendInitialEvents") == "true"
    label_selector, field_selector = query.get("labelSelector"), query.get("fieldSelector")
    m = master(request)

    def current() -> tuple[View, dict[str, dict[str, Any]]]:
        view = _view(request, namespace)
        found = {o["metadata"]["uid"]: o for o in _objects(view, resource, namespace)
                 if _matches(o, label_selector, field_selector)}
        return view, found

    def event(kind: str, obj: dict[str, Any], view: View) -> bytes:
        shown: Any = obj
        if table:
            shown = objects.table(resource.kind, [obj], view.now,
                                  obj["metadata"].get("resourceVersion", ""), view)
        return (json.dumps({"type": kind, "object": shown}) + "\n").encode()

    async def stream() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + timeout
        view, known = current()
        index = m.machine.index
        for obj in known.values():
            rv = int(obj["metadata"].get("resourceVersion") or 0)
            if since == 0 or initial_events or rv > since:
                yield event("ADDED" if since == 0 or initial_events else "MODIFIED", obj, view)
        if initial_events:
            # The watch-list protocol: a bookmark marks the end of the initial state.
            yield (json.dumps({"type": "BOOKMARK", "object": {
                "kind": resource.kind, "apiVersion": resource.group_version,
                "metadata": {"resourceVersion": str(index),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}})
                   + "\n").encode()
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            index = await m.wait_for_index(index, min(5.0, max(0.01,
                                                               deadline - time.monotonic())))
            view, now_known = current()
            for uid, obj in now_known.items():
                before = known.get(uid)
                if before is None:
                    yield event("ADDED", obj, view)
                elif before["metadata"].get("resourceVersion") != obj["metadata"].get(
                        "resourceVersion") or before.get("status") != obj.get("status"):
                    yield event("MODIFIED", obj, view)
            for uid, obj in known.items():
                if uid not in now_known:
                    yield event("DELETED", obj, view)
            known = now_known
            await asyncio.sleep(0.05)  # many commits in a burst make one round of events

    return StreamingResponse(stream(), media_type="application/json")


async def _create(request: Request, resource: discovery.Resource, namespace: str | None
                  ) -> Response:
    manifest = await _body(request)
    if resource.kind == "Namespace":
        status, obj = await _put_namespace(request, manifest, create=True)
        return _json(obj, status)
    if resource.kind not in ("Deployment", "Job", "CronJob"):
        raise KubeError(405, f"{resource.plural} are read-only views here: create a "
                        "Deployment, Job or CronJob", "MethodNotAllowed")
    status, obj = await _put_workload(request, resource, namespace or DEFAULT_NAMESPACE,
                                      manifest, create=True)
    return _json(obj, status)


async def _replace(request: Request, resource: discovery.Resource, namespace: str, name: str
                   ) -> Response:
    manifest = await _body(request)
    if resource.kind == "Namespace":
        status, obj = await _put_namespace(request, manifest, create=False, name=name)
        return _json(obj, status)
    if resource.kind not in ("Deployment", "Job", "CronJob"):
        raise KubeError(405, f"{resource.plural} are read-only views here", "MethodNotAllowed")
    status, obj = await _put_workload(request, resource, namespace, manifest, create=False,
                                      name=name)
    return _json(obj, status)


async def _patch(request: Request, resource: discovery.Resource, namespace: str, name: str
                 ) -> Response:
    if request.headers.get("content-type", "").startswith("application/apply-patch"):
        # Server-side apply creates as well as patches: refuse it before looking anything up.
        raise KubeError(415, "server-side apply is not supported by this server "
                        "(federation): apply without --server-side", "UnsupportedMediaType")
    patch = await _body(request)
    view = _view(request, namespace)
    if resource.kind == "Namespace":
        current = _get_object(view, resource, namespace, name)
        patched = _patch_document(request, current, patch, "Namespace")
        if patched == current:
            return _json(current)
        status, obj = await _put_namespace(request, patched, create=False, name=name)
        return _json(obj, status)
    if resource.kind not in ("Deployment", "Job", "CronJob"):
        raise KubeError(405, f"{resource.plural} are read-only views here", "MethodNotAllowed")
    current = _editable(view, resource, namespace, name)
    patched = _patch_document(request, current, patch, resource.kind)
    if patched == current:  # nothing changes: no write, as the API server does
        return _json(_get_object(view, resource, namespace, name))
    patched.setdefault("metadata", {})["resourceVersion"] = None
    status, obj = await _put_workload(request, resource, namespace, patched, create=False,
                                      name=name)
    return _json(obj, status)


async def _delete(request: Request, resource: discovery.Resource, namespace: str, name: str
                  ) -> Response:
    view = _view(request, namespace)
    obj = _get_object(view, resource, namespace, name)
    if _dry_run(request):
        return _json(obj)
    if resource.kind == "Namespace":
        if name == DEFAULT_NAMESPACE:
            raise KubeError(403, 'namespaces "default" is forbidden: this namespace may not be '
                            "deleted", "Forbidden")
        await _commit(request, {"type": "namespace.delete", "name": name}, f"k8s-ns-del:{name}")
        return _json(obj)
    if resource.kind == "Pod":
        alloc_id = obj["metadata"].get("annotations", {}).get(objects.ALLOC_ANNOTATION)
        if alloc_id is None:
            raise KubeError(409, f'pod "{name}" is not placed yet: it has nothing to stop '
                            "(scale the workload down instead)", "Conflict")
        alloc = master(request).machine.allocations.get(alloc_id)
        if alloc is None:
            raise _not_found(resource, name)
        await _commit(request, {"type": "alloc.stop", "alloc_ids": [alloc["id"]],
                                "reason": f"pod {name} deleted"},
                      f"k8s-pod-del:{alloc_id}")
        return _json(obj)
    if resource.kind == "Event":
        raise KubeError(405, "events are derived from the scheduler's explanations",
                        "MethodNotAllowed")
    key = job_key(namespace, name)
    await _commit(request, {"type": "job.deregister", "job_id": key}, f"k8s-del:{key}")
    return _json(status_body(200, "", "", {"name": name, "group": resource.group,
                                           "kind": resource.plural,
                                           "uid": obj["metadata"]["uid"]}) | {
        "status": "Success"})


async def _subresource(request: Request, resource: discovery.Resource, namespace: str,
                       name: str, sub: str) -> Response:
    method = request.method
    key = (resource.group, resource.plural, sub)
    if key not in discovery.SUBRESOURCES:
        raise KubeError(404, f"{resource.plural}/{sub} is not served here", "NotFound")
    if sub == "status" and method == "GET":
        return _json(_get_object(_view(request, namespace), resource, namespace, name))
    if sub == "log" and method == "GET":
        return await _logs(request, namespace, name)
    if sub == "scale":
        view = _view(request, namespace)
        current = _get_object(view, resource, namespace, name)
        scale = objects.scale(current)
        if method == "GET":
            return _json(scale)
        if method in ("PUT", "PATCH"):
            body = await _body(request)
            wanted = body if method == "PUT" else _patch_document(request, scale, body, "Pod")
            replicas = (wanted.get("spec") or {}).get("replicas")
            if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
                raise _invalid("Scale", "autoscaling", name, Invalid(
                    "spec.replicas", f"Invalid value: {replicas!r}: must be at least 1"))
            editable = _editable(view, resource, namespace, name)
            editable["spec"]["replicas"] = replicas
            editable["metadata"]["resourceVersion"] = None
            _, obj = await _put_workload(request, resource, namespace, editable, create=False,
                                         name=name)
            return _json(objects.scale(obj))
    raise KubeError(405, f"{method} is not allowed on {resource.plural}/{sub}")


async def _logs(request: Request, namespace: str, name: str) -> Response:
    resource = discovery.find("", "v1", "pods")
    assert resource is not None
    pod = _get_object(_view(request, namespace), resource, namespace, name)
    alloc_id = (pod["metadata"].get("annotations") or {}).get(objects.ALLOC_ANNOTATION)
    if alloc_id is None:
        raise KubeError(400, f'pod "{name}" is not placed yet: it has no logs', "BadRequest")
    follow = request.query_params.get("follow") in ("true", "1")
    try:
        upstream = await routes_agent.allocation_logs(request, alloc_id, stream="stdout",
                                                      offset=0, follow=follow)
    except FederationError as exc:
        raise _from_federation(exc) from None
    return StreamingResponse(upstream.body_iterator, media_type="text/plain")


