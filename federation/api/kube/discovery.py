"""What the Kubernetes endpoint says about itself: discovery and OpenAPI v3 documents. Pure.

kubectl maps a manifest's ``apiVersion``/``kind`` to a URL through discovery (``/api``,
``/apis``, one resource list per group-version) and reads the OpenAPI v3 document of a
group-version to learn whether the server validates fields itself (a ``fieldValidation``
query parameter on the kind's PATCH operation, found by its ``x-kubernetes-group-version-kind``).
The PATCH operations do not list ``application/strategic-merge-patch+json``: kubectl then
computes its strategic merge patch from the patch metadata compiled into it (the same tags
``smp.py`` follows) instead of from schemas that describe only the fields served here; the
server accepts that patch type all the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import federation


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


WRITE = ("create", "delete", "get", "list", "patch", "update", "watch")
RESOURCES = (
    Resource("", "v1", "namespaces", "Namespace", False, WRITE, ("ns",), "namespace"),
    Resource("", "v1", "pods", "Pod", True, ("delete", "get", "list", "watch"), ("po",), "pod",
             ("all",)),
    Resource("", "v1", "events", "Event", True, ("get", "list"), ("ev",), "event"),
    Resource("apps", "v1", "deployments", "Deployment", True, WRITE, ("deploy",), "deployment",
             ("all",)),
    Resource("batch", "v1", "jobs", "Job", True, WRITE, (), "job", ("all",)),
    Resource("batch", "v1", "cronjobs", "CronJob", True, WRITE, ("cj",), "cronjob", ("all",)),
)
SUBRESOURCES = {
    ("", "pods", "log"): ("Pod", ("get",)),
    ("apps", "deployments", "scale"): ("Scale", ("get", "patch", "update")),
    ("apps", "deployments", "status"): ("Deployment", ("get",)),
    ("batch", "jobs", "status"): ("Job", ("get",)),
    ("batch", "cronjobs", "status"): ("CronJob", ("get",)),
}
GROUPS = {"apps": ("v1",), "batch": ("v1",)}


def find(group: str, version: str, plural: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def api_group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions,
            "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    groups = [{k: v for k, v in api_group(name).items() if k not in ("kind", "apiVersion")}
              for name in GROUPS]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    mine = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not mine:
        return None
    entries: list[dict[str, Any]] = []
    for r in mine:
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular,
                                 "namespaced": r.namespaced, "kind": r.kind,
                                 "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        for (g, plural, sub), (kind, verbs) in SUBRESOURCES.items():
            if g == group and plural == r.plural:
                entries.append({"name": f"{plural}/{sub}", "singularName": "",
                                "namespaced": r.namespaced, "kind": kind,
                                "verbs": list(verbs)})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": entries}


def version_info() -> dict[str, Any]:
    return {"major": "1", "minor": "37",
            "gitVersion": f"v1.37.0-federation-{federation.__version__}",
            "platform": "linux/amd64", "goVersion": "", "compiler": "federation"}


# -- OpenAPI v3 -----------------------------------------------------------------------------
def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"},
            "uniqueItems": True}


FIELD_VALIDATION = _query(
    "fieldValidation", "Strict is the only behaviour: an unknown or unsupported field is refused "
    "with a 422 naming it, whatever is asked (Ignore and Warn are treated as Strict).")
DRY_RUN = _query("dryRun", "All: validate and answer without storing anything.")
FIELD_MANAGER = _query("fieldManager", "Accepted and not recorded (no managed fields).")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def _ref(kind_id: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{kind_id}"}


def _schema_id(resource: Resource) -> str:
    group = {"": "core", "apps": "apps", "batch": "batch"}[resource.group]
    return f"io.k8s.api.{group}.{resource.version}.{resource.kind}"


def _operation(resource: Resource, verb: str, op_id: str, *, body: tuple[str, ...] = (),
               params: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    op: dict[str, Any] = {
        "operationId": op_id, "tags": [resource.group_version],
        "parameters": list(params),
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": _ref(_schema_id(resource))}}}},
        "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk,
    }
    if body:
        op["requestBody"] = {"required": True, "content": {
            t: {"schema": _ref(_schema_id(resource)) if "json-patch" not in t and
                "merge-patch" not in t else {"type": "object"}} for t in body}}
    return op


def _object_schema(resource: Resource, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object", "description": f"{resource.kind}: the fields federation serves.",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"}, **fields},
        "x-kubernetes-group-version-kind": [
            {"group": resource.group, "version": resource.version, "kind": resource.kind}],
    }


def openapi_document(group: str, version: str, prefix: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version, with every operation served."""
    mine = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not mine:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    base = f"/{_gv_path(group, version)}"
    for r in mine:
        kind = r.kind
        item = f"{base}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else \
            f"{base}/{r.plural}/{{name}}"
        collection = item.rsplit("/", 1)[0]
        single: dict[str, Any] = {"get": _operation(r, "get", f"read{kind}")}
        listing: dict[str, Any] = {"get": _operation(r, "list", f"list{kind}")}
        if "delete" in r.verbs:
            single["delete"] = _operation(r, "delete", f"delete{kind}", params=(DRY_RUN,))
        if "create" in r.verbs:
            listing["post"] = _operation(r, "post", f"create{kind}", body=("application/json",),
                                         params=(FIELD_VALIDATION, DRY_RUN, FIELD_MANAGER))
            single["put"] = _operation(r, "put", f"replace{kind}", body=("application/json",),
                                       params=(FIELD_VALIDATION, DRY_RUN, FIELD_MANAGER))
            single["patch"] = _operation(r, "patch", f"patch{kind}", body=PATCH_TYPES,
                                         params=(FIELD_VALIDATION, DRY_RUN, FIELD_MANAGER))
        paths[item] = single
        paths[collection] = listing
        schemas[_schema_id(r)] = _object_schema(r, {"spec": {"type": "object"},
                                                     "status": {"type": "object"}})
    return {
        "openapi": "3.0.0",
        "info": {"title": "federation Kubernetes endpoint", "version": version},
        "servers": [{"url": prefix}],
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_root(prefix: str) -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document is, with a content hash so
    clients can cache it."""
    paths = {}
    for gv in sorted({(r.group, r.version) for r in RESOURCES}):
        document = openapi_document(gv[0], gv[1], prefix)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
        path = _gv_path(*gv)
        paths[path] = {"serverRelativeURL": f"{prefix}/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


# -- OpenAPI v2 -----------------------------------------------------------------------------
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
_V2_TITLE = "federation Kubernetes endpoint"


def openapi_v2() -> dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": _V2_TITLE, "version": "v1"}, "paths": {}}


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2); payloads here are < 128 bytes."""
    if len(payload) >= 128:
        raise ValueError("payload too long for a one-byte length")
    return bytes([(number << 3) | 2, len(payload)]) + payload


def openapi_v2_protobuf() -> bytes:
    """``openapi_v2.Document`` (gnostic) with swagger (1), info (2: title 1, version 2) and
    empty paths (8): the same document as :func:`openapi_v2`, in the encoding client-go
    reads."""
    info = _field(1, _V2_TITLE.encode()) + _field(2, b"v1")
    return _field(1, b"2.0") + _field(2, info) + _field(8, b"")
