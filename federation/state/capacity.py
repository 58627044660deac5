"""State machine commands about capacity sources: pools, launches, terminations, activities.

Handlers follow the rules of ``machine.py``: validate first, then replace records, never
modify one in place; no clock reads, no I/O.

``StateMachine.launches`` holds every autoscaler record, keyed by its ``token``. Three kinds:

* ``launch``: committed by ``launch.begin`` BEFORE the provider is called (pool, provider,
  instance type, count, token, reason, hourly cost, time) with ``status`` ``pending``;
  ``launch.end`` records the outcome (``done``, ``partial`` or ``failed``, the instance ids,
  the shortfall, the provider's failures or error). ``instances`` maps each instance id to
  ``running``, ``terminating`` or ``terminated``.
* ``terminate``: ``instance.terminate.begin`` (instances, nodes, reason, hourly cost saved)
  before the provider call, ``instance.terminate.end`` after it.
* ``note``: ``autoscaler.record``: a decision not acted upon (dry run, demand nothing can
  hold, an unknown instance reported).

Together they are the activity log (``GET /v1/autoscaler/activities``). It is bounded
deterministically: records still in flight (a pending launch or termination, a launch with
an instance that is not terminated) are always kept; of the others only the
``ACTIVITY_LIMIT`` most recent by ``modify_index`` stay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound, ValidationError
from federation.model import is_live
from federation.state import checks

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine

ACTIVITY_LIMIT = 500
RELEASE_DRAIN_ACTION = "drain"  # the note action of a node drained to be released
MAX_INSTANCES_PER_RECORD = 10_000
LAUNCH_STATUSES = ("pending", "done", "partial", "failed")
INSTANCE_STATES = ("running", "terminating", "terminated")
_TEXT_LIMIT = 2000


def _time(command: Command) -> float:
    value = command.get("time", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _text(value: Any, field: str, *, required: bool = True, limit: int = _TEXT_LIMIT) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValidationError(f"{field} must be a non-empty string", field=field)
    return value[:limit]


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{field} must be a number", field=field)
    if value < 0:
        raise ValidationError(f"{field} cannot be negative", field=field)
    return float(value)


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f"{field} must be a list of strings", field=field)
    if len(value) > MAX_INSTANCES_PER_RECORD:
        raise ValidationError(f"{field} has more than {MAX_INSTANCES_PER_RECORD} entries",
                              field=field)
    return list(value)


def _mapping(command: Command, key: str) -> dict[str, Any]:
    value = command.get(key)
    if not isinstance(value, dict):
        raise ValidationError(f"command field {key!r} is missing or malformed", field=key)
    return value


def in_flight(record: dict[str, Any]) -> bool:
    """Whether a record still describes something that exists or is under way."""
    if record["status"] == "pending":
        return True
    if record["kind"] == "launch":
        return any(state != "terminated" for state in record["instances"].values())
    return False


def _release_pending(sm: StateMachine, record: dict[str, Any]) -> bool:
    """A note that the autoscaler drained a node to release it, while that node still
    drains: the note is how a leader knows to terminate the node once it is empty."""
    if record["kind"] != "note" or record.get("action") != RELEASE_DRAIN_ACTION:
        return False
    node = sm.nodes.get((record.get("detail") or {}).get("node_id") or "")
    return node is not None and bool(node.get("draining"))


def _prune(sm: StateMachine) -> None:
    """Keep in-flight records, notes of drains still pending a release, and the
    ``ACTIVITY_LIMIT`` most recent settled records."""
    settled = [r for r in sm.launches.values()
               if not in_flight(r) and not _release_pending(sm, r)]
    if len(settled) <= ACTIVITY_LIMIT:
        return
    settled.sort(key=lambda r: (r["modify_index"], r["token"]))
    for record in settled[: len(settled) - ACTIVITY_LIMIT]:
        del sm.launches[record["token"]]


def _store(sm: StateMachine, record: dict[str, Any]) -> None:
    sm.launches[record["token"]] = record
    _prune(sm)


# -- pools ---------------------------------------------------------------------------------
def _pool_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Create or replace a pool; the spec was validated by the API (``parse_pool``)."""
    spec = command.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValidationError("a validated pool spec is required", field="spec")
    name = checks.text(spec["name"], "spec.name")
    checks.mapping(spec, "spec")
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


# -- launches ------------------------------------------------------------------------------
def _launch_begin(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record a launch before the provider is called; the token makes the call idempotent."""
    launch = _mapping(command, "launch")
    token = _text(launch.get("token"), "launch.token", limit=128)
    existing = sm.launches.get(token)
    if existing is not None:
        if existing["kind"] != "launch":
            raise ValidationError(f"token {token!r} names a {existing['kind']} record",
                                  field="launch.token")
        return {"token": token, "status": existing["status"], "changed": False}
    pool = _text(launch.get("pool"), "launch.pool")
    if pool not in sm.pools:
        # The pool was deleted between the decision and its commit: do not launch.
        raise NotFound(f"no pool {pool!r}", field="launch.pool")
    count = launch.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 10_000:
        raise ValidationError("launch.count must be an integer from 1 to 10000",
                              field="launch.count")
    record = {
        "token": token,
        "kind": "launch",
        "pool": pool,
        "provider": _text(launch.get("provider"), "launch.provider"),
        "instance_type": _text(launch.get("instance_type"), "launch.instance_type"),
        "count": count,
        "spot": bool(launch.get("spot", False)),
        "zones": _strings(launch.get("zones"), "launch.zones"),
        "price_per_hour": _number(launch.get("price_per_hour", 0.0), "launch.price_per_hour"),
        "hourly_cost": _number(launch.get("hourly_cost", 0.0), "launch.hourly_cost"),
        "reason": _text(launch.get("reason"), "launch.reason"),
        "decision": _text(launch.get("decision"), "launch.decision", required=False),
        "status": "pending",
        "began_at": _time(command),
        "ended_at": None,
        "instances": {},
        "shortfall": None,
        "failures": [],
        "error": None,
    }
    index = sm._bump()
    _store(sm, {**record, "create_index": index, "modify_index": index})
    return {"token": token, "status": "pending", "changed": True}


def _launch_end(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record what a launch produced: instance ids, shortfall, failures or an error."""
    token = _text(command.get("token"), "token", limit=128)
    record = sm.launches.get(token)
    if record is None or record["kind"] != "launch":
        raise NotFound(f"no launch {token!r}", field="token")
    if record["status"] != "pending":
        return {"token": token, "status": record["status"], "changed": False}
    ids = _strings(command.get("instances"), "instances")
    failures = [f[:_TEXT_LIMIT] for f in _strings(command.get("failures"), "failures")]
    error = _text(command.get("error"), "error", required=False) or None
    shortfall = max(0, record["count"] - len(ids))
    status = "failed" if not ids else "partial" if shortfall else "done"
    index = sm._bump()
    _store(sm, {
        **record,
        "status": status,
        "ended_at": _time(command),
        "instances": dict.fromkeys(ids, "running"),
        "shortfall": shortfall,
        "failures": failures,
        "error": error,
        "modify_index": index,
    })
    return {"token": token, "status": status, "changed": True}


# -- terminations --------------------------------------------------------------------------
def _set_instances(sm: StateMachine, pool: str, ids: set[str], state: str,
                   index: int, only_from: str | None = None) -> None:
    for record in list(sm.launches.values()):
        if record["kind"] != "launch" or record["pool"] != pool:
            continue
        hits = [i for i in record["instances"] if i in ids
                and (only_from is None or record["instances"][i] == only_from)
                and record["instances"][i] != "terminated"]
        if hits:
            instances = {**record["instances"], **dict.fromkeys(hits, state)}
            sm.launches[record["token"]] = {**record, "instances": instances,
                                            "modify_index": index}


def _terminate_begin(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record a termination before the provider is called; its instances become terminating."""
    term = _mapping(command, "termination")
    token = _text(term.get("token"), "termination.token", limit=128)
    if token in sm.launches:
        return {"token": token, "status": sm.launches[token]["status"], "changed": False}
    ids = _strings(term.get("instance_ids"), "termination.instance_ids")
    if not ids:
        raise ValidationError("termination.instance_ids must not be empty",
                              field="termination.instance_ids")
    pool = _text(term.get("pool"), "termination.pool")
    record = {
        "token": token,
        "kind": "terminate",
        "pool": pool,
        "provider": _text(term.get("provider"), "termination.provider"),
        "instance_ids": ids,
        "node_ids": _strings(term.get("node_ids"), "termination.node_ids"),
        "hourly_cost": _number(term.get("hourly_cost", 0.0), "termination.hourly_cost"),
        "reason": _text(term.get("reason"), "termination.reason"),
        "decision": _text(term.get("decision"), "termination.decision", required=False),
        "status": "pending",
        "began_at": _time(command),
        "ended_at": None,
        "error": None,
    }
    index = sm._bump()
    _set_instances(sm, pool, set(ids), "terminating", index)
    _store(sm, {**record, "create_index": index, "modify_index": index})
    return {"token": token, "status": "pending", "changed": True}


def _terminate_end(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record a termination's outcome; on error its instances count as running again."""
    token = _text(command.get("token"), "token", limit=128)
    record = sm.launches.get(token)
    if record is None or record["kind"] != "terminate":
        raise NotFound(f"no termination {token!r}", field="token")
    if record["status"] != "pending":
        return {"token": token, "status": record["status"], "changed": False}
    error = _text(command.get("error"), "error", required=False) or None
    index = sm._bump()
    ids = set(record["instance_ids"])
    if error is None:
        _set_instances(sm, record["pool"], ids, "terminated", index)
        _forget_nodes(sm, record.get("node_ids") or [])
    else:
        _set_instances(sm, record["pool"], ids, "running", index, only_from="terminating")
    status = "failed" if error else "done"
    _store(sm, {**record, "status": status, "ended_at": _time(command), "error": error,
                "modify_index": index})
    return {"token": token, "status": status, "changed": True}


def _forget_nodes(sm: StateMachine, node_ids: list[str]) -> None:
    """Nodes whose machines were terminated leave the node table (their allocations stay,
    as history). A node that got live work meanwhile is kept."""
    live = {a["node_id"] for a in sm.allocations.values() if is_live(a)}
    for node_id in node_ids:
        node = sm.nodes.get(node_id)
        if node is None or node_id in live:
            continue
        del sm.nodes[node_id]
        if sm.node_ids_by_name.get(node["name"]) == node_id:
            del sm.node_ids_by_name[node["name"]]


# -- notes ---------------------------------------------------------------------------------
def _record(sm: StateMachine, command: Command) -> dict[str, Any]:
    """A decision that was not acted upon (dry run, unplaceable demand, a report)."""
    note = _mapping(command, "note")
    token = _text(note.get("token"), "note.token", limit=128)
    if token in sm.launches:
        return {"token": token, "changed": False}
    record = {
        "token": token,
        "kind": "note",
        "action": _text(note.get("action"), "note.action", limit=64),
        "pool": _text(note.get("pool"), "note.pool", required=False),
        "reason": _text(note.get("reason"), "note.reason"),
        "hourly_cost": _number(note.get("hourly_cost", 0.0), "note.hourly_cost"),
        "dry_run": bool(note.get("dry_run", False)),
        "detail": {k: v for k, v in (note.get("detail") or {}).items()
                   if isinstance(k, str)} if isinstance(note.get("detail"), dict) else {},
        "status": "recorded",
        "began_at": _time(command),
        "ended_at": _time(command),
    }
    index = sm._bump()
    _store(sm, {**record, "create_index": index, "modify_index": index})
    return {"token": token, "changed": True}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "pool.apply": _pool_apply,
    "pool.delete": _pool_delete,
    "launch.begin": _launch_begin,
    "launch.end": _launch_end,
    "instance.terminate.begin": _terminate_begin,
    "instance.terminate.end": _terminate_end,
    "autoscaler.record": _record,
}
