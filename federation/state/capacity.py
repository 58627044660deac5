"""State machine commands about capacity sources: pools (and, with the autoscaler, launches).

Handlers follow the rules of ``machine.py``: validate first, then replace records, never
modify one in place; no clock reads, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine


def _pool_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Create or replace a pool; the spec was validated by the API (``parse_pool``)."""
    spec = command.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValidationError("a validated pool spec is required", field="spec")
    name = spec["name"]
    existing = sm.pools.get(name)
    if existing is not None and existing["spec"] == spec:
        return {"name": name, "version": existing["version"], "changed": False}
    index = sm._bump()
    sm.pools[name] = {
        "name": name,
        "spec": spec,
        "version": existing["version"] + 1 if existing else 1,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    return {"name": name, "version": sm.pools[name]["version"], "changed": True}


def _pool_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if not isinstance(name, str) or name not in sm.pools:
        raise NotFound(f"no pool {name!r}", field="name")
    sm._bump()
    del sm.pools[name]
    return {"name": name}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "pool.apply": _pool_apply,
    "pool.delete": _pool_delete,
}
