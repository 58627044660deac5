"""State machine commands for member Kubernetes clusters (``cluster.apply`` / ``cluster.delete``).

A member cluster record holds what the connector needs to reach the cluster: its name, the
pool and labels its nodes join with, the kubeconfig context, the API server's URL (shown to
operators) and the kubeconfig itself **sealed** (``kubeconfig_sealed``: Fernet ciphertext made
by the API with a key derived from the cluster secret, see ``federation.members.sealing``).
The state machine never sees the clear text, so neither the Raft log, the journal nor a
snapshot holds it. Deleting a cluster marks its nodes down at once: their work is lost and
placed elsewhere, as when a node goes silent. Handlers follow the rules of ``machine.py``:
validate first, then replace records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound
from federation.state import checks

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine

CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FIELDS = ("name", "pool", "context", "server", "kubeconfig_sealed", "image")


def cluster_record(record: Any, field: str) -> None:
    """The shape of a stored cluster record (commands and snapshots)."""
    checks.mapping(record, field)
    name = record.get("name")
    if not isinstance(name, str) or not CLUSTER_NAME.match(name):
        raise checks.fail(f"{field}.name", "must be a DNS-1123 label")
    for key in ("pool", "kubeconfig_sealed"):
        checks.text(record.get(key), f"{field}.{key}", limit=1 << 20)
    for key in ("context", "server", "image"):
        if record.get(key) is not None:
            checks.text(record[key], f"{field}.{key}", limit=checks.MAX_TEXT, empty=True)
    for key, value in checks.mapping(record.get("labels", {}), f"{field}.labels").items():
        checks.text(value, f"{field}.labels.{key}", limit=checks.MAX_TEXT, empty=True)


def _now(command: Command) -> float:
    value = command.get("time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _cluster_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    cluster = command.get("cluster")
    cluster_record(cluster, "cluster")
    assert isinstance(cluster, dict)
    fields: dict[str, Any] = {key: cluster.get(key) for key in FIELDS}
    fields["labels"] = dict(cluster.get("labels") or {})
    name = str(fields["name"])
    existing = sm.clusters.get(name)
    if existing is not None and all(existing.get(k) == v for k, v in fields.items()):
        return {"name": name, "changed": False, "version": existing["version"]}
    index = sm._bump()
    record = {**fields,
              "version": existing["version"] + 1 if existing else 1,
              "created_at": existing["created_at"] if existing else _now(command),
              "create_index": existing["create_index"] if existing else index,
              "modify_index": index}
    sm.clusters[name] = record
    return {"name": name, "changed": True, "version": record["version"]}


def _cluster_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if not isinstance(name, str) or name not in sm.clusters:
        raise NotFound(f"no member cluster {str(name)[:checks.MAX_ID]!r}", field="name")
    index = sm._bump()
    sm.clusters.pop(name)
    members = {node_id for node_id, node in sm.nodes.items()
               if node.get("provider") == "kubernetes" and node.get("cluster") == name
               and node["status"] != "down"}
    for node_id in sorted(members):
        sm.nodes[node_id] = {**sm.nodes[node_id], "status": "down", "modify_index": index}
    lost = 0
    for alloc in list(sm.allocations.values()):
        if alloc["node_id"] in members and alloc["client_status"] in ("pending", "running"):
            # Lost, and told to stop: if the cluster comes back its pods are deleted.
            sm.put_allocation({**alloc, "client_status": "lost", "desired_status": "stop",
                               "modify_index": index})
            lost += 1
    return {"name": name, "nodes_down": len(members), "lost": lost}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "cluster.apply": _cluster_apply,
    "cluster.delete": _cluster_delete,
}
