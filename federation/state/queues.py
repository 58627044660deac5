"""State machine commands for fair-share queues: a weight and an optional quota each.

Handlers follow the rules of ``machine.py``: validate first, then replace records; no clock
reads, no I/O. Jobs name their queue in the spec; a queue without a record has weight 1 and
no quota.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound, ValidationError
from federation.state import checks

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine


def _queue_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    spec = command.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValidationError("a validated queue spec is required", field="spec")
    # What fair-share ordering reads (the API validated the rest: federation.specs.queue).
    name = checks.text(spec["name"], "spec.name")
    if spec.get("weight") is not None:
        checks.number(spec["weight"], "spec.weight", high=1000.0)
    if spec.get("quota") is not None:
        for key, value in checks.mapping(spec["quota"], "spec.quota").items():
            checks.number(value, f"spec.quota.{key}")
    existing = sm.queues.get(name)
    if existing is not None and existing["spec"] == spec:
        return {"name": name, "changed": False}
    index = sm._bump()
    sm.queues[name] = {"name": name, "spec": spec,
                       "create_index": existing["create_index"] if existing else index,
                       "modify_index": index}
    return {"name": name, "changed": True}


def _queue_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if not isinstance(name, str) or name not in sm.queues:
        raise NotFound(f"no queue {name!r}", field="name")
    sm._bump()
    del sm.queues[name]
    return {"name": name}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "queue.apply": _queue_apply,
    "queue.delete": _queue_delete,
}
