"""Shape checks for what enters the state machine: command fields and whole records.

The state machine and every reader of its tables (scheduler, views, leader loops) index
records by key without defending themselves; these checks are what makes that safe. Each
raises :class:`~federation.errors.ValidationError` naming the field in the path form users
see (``nodes[3].name``). They are pure and cheap, and run both where a command is built (the
API refuses bad input with a 4xx before anything is committed) and inside ``apply`` (a
command that reaches the log anyway is rejected the same way on every server).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from federation.errors import ValidationError

MAX_ID = 253  # ids, names, tokens: a DNS name's length
MAX_TEXT = 4096  # free text kept in records (messages, reasons)
MAX_COUNT = 10_000  # instances of one group (as the job spec)
MAX_GROUPS = 100
MAX_JOB_HISTORY = 10  # earlier versions of a job kept (state.machine.JOB_HISTORY)
MAX_LIST = 100_000  # entries of one list in one command
MAX_INT = 1 << 53  # integers the state keeps (indexes, capacities, times): JSON-safe
NODE_STATUSES = ("ready", "down")
JOB_TYPES = ("service", "batch")
ALLOC_CLIENT_STATUSES = ("pending", "running", "complete", "failed", "lost", "stopped")
ALLOC_DESIRED_STATUSES = ("run", "stop", "evict")
LAUNCH_KINDS = ("launch", "terminate", "note")
INSTANCE_STATES = ("running", "terminating", "terminated")


def fail(field: str, message: str) -> ValidationError:
    return ValidationError(f"{field}: {message}", field=field)


def text(value: Any, field: str, *, limit: int = MAX_ID, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise fail(field, "must be a non-empty string")
    if len(value) > limit:
        raise fail(field, f"is longer than {limit} characters")
    return value


def optional_text(value: Any, field: str, *, limit: int = MAX_TEXT) -> str | None:
    return None if value is None else text(value, field, limit=limit, empty=True)


def integer(value: Any, field: str, *, low: int = 0, high: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, "must be an integer")
    if not low <= value <= high:
        raise fail(field, f"must be from {low} to {high}")
    return value


def number(value: Any, field: str, *, low: float = 0.0, high: float = float(MAX_INT)) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(field, "must be a number")
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise fail(field, "is out of range")
    if not math.isfinite(value) or not low <= value <= high:
        raise fail(field, f"must be a finite number from {low:g} to {high:g}")
    return float(value)


def optional_number(value: Any, field: str) -> float | None:
    return None if value is None else number(value, field)


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise fail(field, "must be true or false")
    return value


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise fail(field, "must be a mapping")
    if not all(isinstance(k, str) for k in value):
        raise fail(field, "keys must be strings")
    return value


def sequence(value: Any, field: str, *, limit: int = MAX_LIST) -> list[Any]:
    if not isinstance(value, list):
        raise fail(field, "must be a list")
    if len(value) > limit:
        raise fail(field, f"has more than {limit} entries")
    return value


def strings(value: Any, field: str, *, limit: int = MAX_LIST) -> list[str]:
    for i, item in enumerate(sequence(value, field, limit=limit)):
        text(item, f"{field}[{i}]")
    return value


def one_of(value: Any, choices: tuple[str, ...], field: str) -> str:
    if value not in choices or not isinstance(value, str):
        raise fail(field, f"must be one of {', '.join(choices)}")
    return value


# -- parts of records ------------------------------------------------------------------------
def capacity(value: Any, field: str) -> None:
    """A node's capacity: whole millicores, MiB and GPU devices."""
    cap = mapping(value, field)
    for key in ("cpu_milli", "memory_mib"):
        integer(cap.get(key, 0), f"{field}.{key}")
    integer(cap.get("gpu", 0), f"{field}.gpu", high=1024)


def resources(value: Any, field: str) -> None:
    """An allocation's resources: what the scheduler and the per-node usage read."""
    res = mapping(value, field)
    for key in ("cpu_milli", "memory_mib"):
        if res.get(key) is not None:
            integer(res[key], f"{field}.{key}")
    if res.get("gpu") is not None:
        number(res["gpu"], f"{field}.gpu", high=1024)
    if res.get("gpu_devices") is not None:
        for i, device in enumerate(sequence(res["gpu_devices"], f"{field}.gpu_devices",
                                            limit=1024)):
            integer(device, f"{field}.gpu_devices[{i}]", high=1023)


def job_spec(value: Any, field: str = "spec") -> Mapping[str, Any]:
    """The part of a job spec the state machine and the leader loops rely on. The API
    validates the whole spec (``federation.specs.job``); this keeps a command that did not
    come through it from breaking anything that reads the job table."""
    spec = mapping(value, field)
    text(spec.get("id"), f"{field}.id")
    one_of(spec.get("type"), JOB_TYPES, f"{field}.type")
    if spec.get("priority") is not None:
        integer(spec["priority"], f"{field}.priority", high=100)
    if spec.get("queue") is not None:
        text(spec["queue"], f"{field}.queue")
    if spec.get("schedule") is not None:
        text(spec["schedule"], f"{field}.schedule", limit=256)
    if spec.get("depends_on") is not None:
        strings(spec["depends_on"], f"{field}.depends_on", limit=MAX_GROUPS)
    for i, group in enumerate(sequence(spec.get("groups"), f"{field}.groups",
                                       limit=MAX_GROUPS)):
        where = f"{field}.groups[{i}]"
        mapping(group, where)
        text(group.get("name"), f"{where}.name")
        integer(group.get("count"), f"{where}.count", high=MAX_COUNT)
        if group.get("resources") is not None:
            mapping(group["resources"], f"{where}.resources")
    return spec


def unplaced(value: Any, field: str) -> Mapping[str, Any]:
    """Why groups of a job are not placed: a mapping of group to a report mapping."""
    reports = mapping(value, field)
    for group, report in reports.items():
        mapping(report, f"{field}.{group}")
    return reports


# -- whole records (snapshot restore) -------------------------------------------------------
def server_record(record: Any, field: str) -> None:
    mapping(record, field)
    for key in ("id", "raft", "http"):
        text(record.get(key), f"{field}.{key}", limit=MAX_TEXT)


def node_record(record: Any, field: str) -> None:
    mapping(record, field)
    for key in ("id", "name"):
        text(record.get(key), f"{field}.{key}")
    one_of(record.get("status"), NODE_STATUSES, f"{field}.status")
    boolean(record.get("draining"), f"{field}.draining")
    if record.get("drain_deadline") is not None:
        number(record["drain_deadline"], f"{field}.drain_deadline")
    number(record.get("last_heartbeat"), f"{field}.last_heartbeat")
    capacity(record.get("capacity", {}), f"{field}.capacity")
    for key in ("create_index", "modify_index"):
        integer(record.get(key), f"{field}.{key}")
    if record.get("labels") is not None:
        mapping(record["labels"], f"{field}.labels")


def job_record(record: Any, field: str) -> None:
    mapping(record, field)
    spec = job_spec(record.get("spec"), f"{field}.spec")
    text(record.get("id"), f"{field}.id")
    if record["id"] != spec["id"]:
        raise fail(f"{field}.id", "differs from spec.id")
    integer(record.get("version"), f"{field}.version")
    boolean(record.get("stopped"), f"{field}.stopped")
    if record.get("parent") is not None:
        text(record["parent"], f"{field}.parent")
    optional_number(record.get("launch_time"), f"{field}.launch_time")
    number(record.get("submit_time"), f"{field}.submit_time")
    unplaced(record.get("unplaced") or {}, f"{field}.unplaced")
    mapping(record.get("exhausted") or {}, f"{field}.exhausted")
    for key in ("create_index", "modify_index"):
        integer(record.get(key), f"{field}.{key}")
    for i, entry in enumerate(sequence(record.get("history") or [], f"{field}.history",
                                       limit=MAX_JOB_HISTORY)):
        where = f"{field}.history[{i}]"
        mapping(entry, where)
        integer(entry.get("version"), f"{where}.version", low=1)
        job_spec(entry.get("spec"), f"{where}.spec")
        number(entry.get("submit_time"), f"{where}.submit_time")
        boolean(entry.get("stopped"), f"{where}.stopped")


def allocation_record(record: Any, field: str) -> None:
    mapping(record, field)
    for key in ("id", "job_id", "group", "node_id"):
        text(record.get(key), f"{field}.{key}")
    one_of(record.get("desired_status"), ALLOC_DESIRED_STATUSES, f"{field}.desired_status")
    one_of(record.get("client_status"), ALLOC_CLIENT_STATUSES, f"{field}.client_status")
    resources(record.get("resources") or {}, f"{field}.resources")
    if record.get("priority") is not None:
        integer(record["priority"], f"{field}.priority", high=100)
    for key in ("create_index", "modify_index"):
        integer(record.get(key), f"{field}.{key}")


def pool_record(record: Any, field: str) -> None:
    mapping(record, field)
    text(record.get("name"), f"{field}.name")
    spec = mapping(record.get("spec"), f"{field}.spec")
    if spec.get("name") != record["name"]:
        raise fail(f"{field}.spec.name", "differs from name")
    for key in ("version", "create_index", "modify_index"):
        integer(record.get(key), f"{field}.{key}")


def launch_record(record: Any, field: str) -> None:
    mapping(record, field)
    text(record.get("token"), f"{field}.token")
    kind = one_of(record.get("kind"), LAUNCH_KINDS, f"{field}.kind")
    text(record.get("status"), f"{field}.status")
    integer(record.get("modify_index"), f"{field}.modify_index")
    if kind == "launch":
        text(record.get("pool"), f"{field}.pool")
        integer(record.get("count"), f"{field}.count")
        for instance, state in mapping(record.get("instances"), f"{field}.instances").items():
            one_of(state, INSTANCE_STATES, f"{field}.instances.{instance}")
    elif kind == "terminate":
        text(record.get("pool"), f"{field}.pool")
        strings(record.get("instance_ids"), f"{field}.instance_ids")
        strings(record.get("node_ids") or [], f"{field}.node_ids")
    elif record.get("detail") is not None:
        mapping(record["detail"], f"{field}.detail")


def queue_record(record: Any, field: str) -> None:
    mapping(record, field)
    text(record.get("name"), f"{field}.name")
    spec = mapping(record.get("spec"), f"{field}.spec")
    if spec.get("name") != record["name"]:
        raise fail(f"{field}.spec.name", "differs from name")


def namespace_record(record: Any, field: str) -> None:
    mapping(record, field)
    text(record.get("name"), f"{field}.name", limit=63)
    for key in ("labels", "annotations"):
        mapping(record.get(key, {}), f"{field}.{key}")


_RECORDS = (
    ("servers", "id", server_record),
    ("nodes", "id", node_record),
    ("jobs", "id", job_record),
    ("allocations", "id", allocation_record),
    ("pools", "name", pool_record),
    ("launches", "token", launch_record),
    ("queues", "name", queue_record),
    ("namespaces", "name", namespace_record),
    ("clusters", "name", lambda record, field: _cluster_record(record, field)),
)
OPTIONAL_TABLES = ("pools", "launches", "queues", "namespaces", "clusters")


def _cluster_record(record: Any, field: str) -> None:
    from federation.state.clusters import cluster_record

    cluster_record(record, field)


def snapshot(data: Any, version: int) -> None:
    """A whole snapshot (``GET /v1/snapshot``'s body), checked completely before a restore:
    every record's shape, unique keys, and references between tables."""
    mapping(data, "snapshot")
    if data.get("version") != version:
        raise fail("version", f"unsupported snapshot (expected version {version})")
    integer(data.get("index"), "index")
    keys: dict[str, set[str]] = {}
    for table, key, check in _RECORDS:
        records = data.get(table, [] if table in OPTIONAL_TABLES else None)
        seen: set[str] = set()
        for i, record in enumerate(sequence(records, table, limit=10 * MAX_LIST)):
            check(record, f"{table}[{i}]")
            if record[key] in seen:
                raise fail(f"{table}[{i}].{key}", f"duplicate {key} {record[key]!r}")
            seen.add(record[key])
        keys[table] = seen
    names: set[str] = set()
    for i, node in enumerate(data["nodes"]):
        if node["name"] in names:
            raise fail(f"nodes[{i}].name", f"two nodes are named {node['name']!r}")
        names.add(node["name"])
    for i, alloc in enumerate(data["allocations"]):
        if alloc["job_id"] not in keys["jobs"]:
            raise fail(f"allocations[{i}].job_id", f"no job {alloc['job_id']!r}")
        live = alloc["desired_status"] == "run" and alloc["client_status"] in (
            "pending", "running")
        if live and alloc["node_id"] not in keys["nodes"]:
            # Allocations of a forgotten node stay as history, but only ended ones.
            raise fail(f"allocations[{i}].node_id", f"no node {alloc['node_id']!r}")
