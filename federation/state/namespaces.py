"""State machine commands for namespaces declared explicitly (``v1 Namespace``).

A namespace exists when it is declared here or when a job lives in it (``default`` always
does), so ``/v1`` users never need to create one. A declared namespace carries the labels and
annotations it was given (kubectl keeps its last-applied configuration there). Deleting a
namespace stops every job in it, as deleting a Kubernetes namespace removes its workloads.
Handlers follow the rules of ``machine.py``: validate first, then replace records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound, ValidationError
from federation.specs.namespace import DEFAULT_NAMESPACE, is_namespace, split_key

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError("must map strings to strings", field=field)
    return dict(value)


def _now(command: Command) -> float:
    value = command.get("time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _namespace_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if not isinstance(name, str) or not is_namespace(name):
        raise ValidationError("a namespace name must be a DNS-1123 label", field="name")
    labels = _string_map(command.get("labels"), "labels")
    annotations = _string_map(command.get("annotations"), "annotations")
    existing = sm.namespaces.get(name)
    if existing is not None and (existing["labels"], existing["annotations"]) == (
            labels, annotations):
        return {"name": name, "changed": False}
    index = sm._bump()
    sm.namespaces[name] = {
        "name": name, "labels": labels, "annotations": annotations,
        "created_at": existing["created_at"] if existing else _now(command),
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index}
    return {"name": name, "changed": True}


def _namespace_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if name == DEFAULT_NAMESPACE:
        raise ValidationError("the default namespace cannot be deleted", field="name")
    in_use = [key for key in sm.jobs if split_key(key)[0] == name]
    if not isinstance(name, str) or (name not in sm.namespaces and not in_use):
        raise NotFound(f"no namespace {name!r}", field="name")
    index = sm._bump()
    sm.namespaces.pop(name, None)
    stopped = 0
    for key in in_use:
        if not sm.jobs[key]["stopped"]:
            sm.stop_job(key, index, _now(command))
            stopped += 1
    return {"name": name, "stopped_jobs": stopped}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "namespace.apply": _namespace_apply,
    "namespace.delete": _namespace_delete,
}
