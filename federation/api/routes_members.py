"""Member Kubernetes clusters: add (or replace), list, read and remove.

The kubeconfig travels in the request once: the server seals it (``federation.members.sealing``)
before committing, and no answer ever carries it, sealed or not.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from federation.acl.authorizer import Need
from federation.api.acl import require
from federation.api.deps import before_read, command_id, document, master
from federation.errors import NotFound, ValidationError
from federation.members import kubeconfig
from federation.members.sealing import Sealer
from federation.model.nodes import AGENT_CLUSTER
from federation.state.clusters import CLUSTER_NAME

router = APIRouter(tags=["clusters"])
READ = [Depends(require(Need("pool", "read")))]
WRITE = [Depends(require(Need("pool", "write")))]
BODY_FIELDS = {"name", "kubeconfig", "context", "pool", "labels", "image"}
DEFAULT_IMAGE = "busybox:1.36"
_LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"


def cluster_view(machine: Any, record: dict[str, Any]) -> dict[str, Any]:
    """A cluster as users see it: never its kubeconfig; with its nodes' counts."""
    nodes = [n for n in list(machine.nodes.values())
             if n.get("provider") == "kubernetes" and n.get("cluster") == record["name"]]
    return {**{k: v for k, v in record.items() if k != "kubeconfig_sealed"},
            "nodes": {"ready": sum(1 for n in nodes if n["status"] == "ready"),
                      "down": sum(1 for n in nodes if n["status"] != "ready")}}


def _body(body: Any, name: str) -> dict[str, Any]:
    import re

    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object", field="kubeconfig")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    if body.get("name", name) != name:
        raise ValidationError(f"the body names cluster {body['name']!r} but the path names "
                              f"{name!r}", field="name")
    if not CLUSTER_NAME.match(name):
        raise ValidationError("a cluster name is a DNS-1123 label (a-z, 0-9, -; 1..63)",
                              field="name")
    if name == AGENT_CLUSTER:
        raise ValidationError(f"{AGENT_CLUSTER!r} names the agents' nodes: choose another "
                              "name", field="name")
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise ValidationError("context must be a non-empty string", field="context")
    pool = body.get("pool") or name
    if not isinstance(pool, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", pool):
        raise ValidationError("pool must be a name (letters, digits, . _ -)", field="pool")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict):
        raise ValidationError("labels map strings to strings", field="labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not re.match(_LABEL_KEY, key):
            raise ValidationError(f"invalid label key {str(key)[:64]!r}", field=f"labels.{key}")
        if not isinstance(value, str) or len(value) > 253:
            raise ValidationError("a label value is a string of at most 253 characters",
                                  field=f"labels.{key}")
    image = body.get("image") or DEFAULT_IMAGE
    if not isinstance(image, str) or len(image) > 512:
        raise ValidationError("image must be an image reference", field="image")
    text = body.get("kubeconfig")
    if not isinstance(text, str):
        raise ValidationError("kubeconfig (the file's text) is required", field="kubeconfig")
    parsed = kubeconfig.parse(text, context)
    return {"name": name, "pool": pool, "labels": labels, "image": image,
            "context": parsed["context"], "server": parsed["server"], "kubeconfig": text}


_BODY_SCHEMA = {
    "type": "object", "required": ["kubeconfig"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "kubeconfig": {"type": "string", "description": "the kubeconfig file's text"},
        "context": {"type": "string"}, "pool": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "image": {"type": "string"}}}


@router.put("/v1/clusters/{name}", dependencies=WRITE,
            openapi_extra={"requestBody": {"content": {
                "application/json": {"schema": _BODY_SCHEMA}}, "required": True}})
async def add_cluster(request: Request, name: str) -> dict[str, Any]:
    """Add a member cluster, or replace one (a new kubeconfig, pool, labels)."""
    fields = _body(await document(request), name)
    m = master(request)
    if fields["pool"] in m.machine.pools:
        # That pool's provider would take the member's nodes for its own instances (and
        # scale them down): a member cluster's nodes are never bought or released here.
        raise ValidationError(f"pool {fields['pool']!r} is an autoscaled pool: give the "
                              "member cluster a pool of its own", field="pool")
    sealed = Sealer(m.config.secret).seal(fields.pop("kubeconfig"))
    value = await m.commit({"type": "cluster.apply", "id": command_id(request, f"cluster:{name}"),
                            "cluster": {**fields, "kubeconfig_sealed": sealed}})
    return {**cluster_view(m.machine, m.machine.clusters[name]), "changed": value["changed"]}


@router.get("/v1/clusters", dependencies=READ)
async def list_clusters(request: Request, consistent: bool = False) -> list[dict[str, Any]]:
    await before_read(request, consistent)
    machine = master(request).machine
    return [cluster_view(machine, c) for c in sorted(list(machine.clusters.values()),
                                                     key=lambda c: c["name"])]


@router.get("/v1/clusters/{name}", dependencies=READ)
async def get_cluster(request: Request, name: str, consistent: bool = False) -> dict[str, Any]:
    await before_read(request, consistent)
    machine = master(request).machine
    record = machine.clusters.get(name)
    if record is None:
        raise NotFound(f"no member cluster {name!r}")
    return cluster_view(machine, record)


@router.delete("/v1/clusters/{name}", dependencies=WRITE)
async def remove_cluster(request: Request, name: str) -> dict[str, Any]:
    """Remove a member cluster: its nodes are down at once and their work placed elsewhere;
    the connector deletes the pods it made there."""
    m = master(request)
    if name not in m.machine.clusters:
        raise NotFound(f"no member cluster {name!r}")
    value = await m.commit({"type": "cluster.delete",
                            "id": command_id(request, f"cluster-delete:{name}"), "name": name})
    return {"name": name, "nodes_down": value["nodes_down"], "lost": value["lost"]}
