"""The state machine is total: any command, in any order, is applied or rejected, never
raises, and a rejected command changes nothing (hypothesis, plus the cases that broke a
cluster once).

Commands are drawn from the shapes the cluster really commits (registrations, plans, status
reports, restores, gc...) against the ids that exist at that moment, then damaged at random:
a key dropped, a value of the wrong type, a huge value, an unknown type. After every command
the invariants hold: the per-job, per-name and per-node indexes match the tables, no plan
over-commits a node, every job's status can be computed, and the whole state still passes
the restore check. The same sequence applied to a second machine gives the same digest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.model.usage import NodeUsage
from federation.state import checks, gc
from federation.state import machine as machine_module
from federation.state.journal import Table
from federation.state.machine import SNAPSHOT_VERSION, StateMachine

# -- digest and invariants ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, NodeUsage):
        return [value.cpu_milli, value.memory_mib,
                {k: {str(d): m for d, m in v.items()} for k, v in value.gpu_milli.items()}]
    return repr(value)


def digest(sm: StateMachine) -> str:
    """Everything replicated, order-independent: tables, derived indexes and the index."""
    state = {name: getattr(sm, name) for name in machine_module.TABLES}
    state["index"] = sm.index
    state["node_usage"] = sm.node_usage
    state["alloc_ids_by_node"] = sm.alloc_ids_by_node
    text = json.dumps(state, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def usage_of(sm: StateMachine, node_id: str) -> tuple[int, int]:
    return sm.node_usage.cpu_milli.get(node_id, 0), sm.node_usage.memory_mib.get(node_id, 0)


def over_committed(sm: StateMachine) -> dict[str, tuple[int, int]]:
    found = {}
    for node_id, node in sm.nodes.items():
        cap = node.get("capacity") or {}
        cpu, memory = usage_of(sm, node_id)
        if cpu > cap.get("cpu_milli", 0) or memory > cap.get("memory_mib", 0):
            found[node_id] = (cpu, memory)
    return found


def assert_invariants(sm: StateMachine) -> None:
    assert sm.node_ids_by_name == {n["name"]: n["id"] for n in sm.nodes.values()}
    by_job: dict[str, set[str]] = {}
    for alloc in sm.allocations.values():
        by_job.setdefault(alloc["job_id"], set()).add(alloc["id"])
    assert dict(sm.alloc_ids_by_job) == by_job
    assert sm.alloc_ids_by_node == machine_module.index_by_node(sm.allocations)
    fresh = NodeUsage.of(sm.allocations)
    assert (sm.node_usage.cpu_milli, sm.node_usage.memory_mib, sm.node_usage.gpu_milli) == (
        fresh.cpu_milli, fresh.memory_mib, fresh.gpu_milli)
    for name in machine_module.TABLES:
        table = getattr(sm, name)
        assert isinstance(table, Table) and table.journal is sm.journal, name
    assert not sm.journal.active and not sm.journal.entries
    for job in sm.jobs.values():
        assert sm.job_status(job) in ("pending", "running", "degraded", "complete", "failed",
                                     "dead")
    checks.snapshot(sm.snapshot(), SNAPSHOT_VERSION)  # the state can always be restored


# -- commands ----------------------------------------------------------------------------
NODE_NAMES = ["n1", "n2", "n3"]
JOB_IDS = ["a", "b", "c", "p"]
CLAIMS = ["s1:a", "s2:b"]  # the claims of two servers that gained leadership in turn
JUNK = [None, "", "x", -1, 0, 1.5, True, 10**40, float("nan"), float("inf"), [], {},
        ["x"], {"x": 1}, "x" * 5000]


def _spec(draw: st.DrawFn, job_id: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["service", "batch"]))
    spec: dict[str, Any] = {
        "id": job_id, "type": kind, "priority": draw(st.integers(0, 100)),
        "depends_on": draw(st.lists(st.sampled_from(JOB_IDS), max_size=2, unique=True))
        if kind == "batch" else [],
        "groups": [{"name": "g", "count": draw(st.integers(1, 3)),
                    "resources": {"cpu": 500, "memory": 256}}]}
    if job_id == "p" and kind == "batch":
        spec["schedule"] = draw(st.sampled_from(["* * * * *", "0 0 31 2 *"]))
    return spec


@st.composite
def well_formed(draw: st.DrawFn, sm: StateMachine) -> dict[str, Any]:
    """A command of a shape the cluster commits, against ids that exist now (mostly)."""
    nodes = sorted(sm.nodes)
    jobs = sorted(sm.jobs)
    allocs = sorted(sm.allocations)
    kind = draw(st.sampled_from([
        "node.register", "node.register", "job.register", "job.register", "plan.apply",
        "plan.apply", "alloc.update_status", "job.deregister", "node.drain",
        "node.mark_down", "node.heartbeat", "job.blocked", "gc", "state.restore",
        "alloc.stop", "noop", "server.upsert", "queue.apply", "pool.apply",
        "job.revert", "cluster.apply", "cluster.delete", "leader.claim"]))
    command: dict[str, Any] = {"type": kind}
    if kind == "leader.claim":
        command["leader"] = draw(st.sampled_from(CLAIMS))
    elif kind == "node.register":
        name = draw(st.sampled_from(NODE_NAMES))
        command["node"] = {
            "id": draw(st.sampled_from([f"id-{name}", "id-n1"])), "name": name,
            "token_hash": "h", "labels": {"rack": "r1"},
            "capacity": {"cpu_milli": draw(st.sampled_from([1000, 2000])),
                         "memory_mib": 1024, "gpu": draw(st.integers(0, 2))}}
    elif kind == "job.register":
        job_id = draw(st.sampled_from(JOB_IDS))
        command["spec"] = _spec(draw, job_id)
        if draw(st.booleans()) and jobs:
            command["parent"] = draw(st.sampled_from(jobs))
            command["launch_time"] = draw(st.floats(0, 1000))
    elif kind == "plan.apply":
        job_id = draw(st.sampled_from(jobs or JOB_IDS))
        job = sm.jobs.get(job_id)
        placements = []
        for i in range(draw(st.integers(0, 3))):
            node_id = draw(st.sampled_from(nodes or ["id-n1"]))
            placements.append({
                "id": f"{job_id}-{sm.index}-{i}-{draw(st.integers(0, 2))}", "job_id": job_id,
                "group": "g", "node_id": node_id, "index": i,
                "resources": {"cpu_milli": draw(st.sampled_from([300, 700, 1500])),
                              "memory_mib": 256}})
        command.update({
            "job_id": job_id, "job_version": job["version"] if job else 1,
            "allocations": placements,
            "stops": draw(st.lists(st.sampled_from(allocs), max_size=2)) if allocs else [],
            "unplaced": {}, "exhausted": {}})
    elif kind == "alloc.update_status":
        if allocs:
            command["updates"] = [{
                "id": draw(st.sampled_from(allocs)),
                "client_status": draw(st.sampled_from(
                    ["running", "complete", "failed", "lost", "pending"])),
                "exit_code": 0, "message": "m", "finished_at": draw(st.floats(0, 10**6))}]
        else:
            command["updates"] = []
    elif kind == "job.revert":
        command["job_id"] = draw(st.sampled_from(jobs or JOB_IDS))
        command["version"] = draw(st.sampled_from([0, 1, 2, 3, 50, "1", None, True]))
    elif kind in ("job.deregister", "job.blocked"):
        command["job_id"] = draw(st.sampled_from(jobs or JOB_IDS))
        if kind == "job.blocked":
            command["unplaced"] = {"*": {"explanation": "waiting", "unplaced": 0}}
    elif kind in ("node.drain", "node.mark_down", "node.heartbeat"):
        command["node_id"] = draw(st.sampled_from(nodes or ["id-n1"]))
        if kind == "node.drain":
            command["draining"] = draw(st.booleans())
            command["deadline"] = 100.0
        if kind == "node.mark_down":
            command["last_heartbeat_seen"] = draw(st.floats(0, 10**7))
    elif kind == "gc":
        command.update(gc.Policy(periodic_keep=draw(st.integers(0, 2)),
                                 job_age=draw(st.sampled_from([0.0, 10.0])),
                                 allocs_per_job=draw(st.integers(0, 2))).command(0.0))
    elif kind == "state.restore":
        command["snapshot"] = copy.deepcopy(sm.snapshot())
    elif kind == "alloc.stop":
        command["alloc_ids"] = draw(st.lists(st.sampled_from([*allocs, "gone"]), max_size=3))
        command["reason"] = draw(st.sampled_from([None, "asked", ""]))
    elif kind == "server.upsert":
        command["server"] = {"id": "s1", "raft": "127.0.0.1:1", "http": "http://x"}
    elif kind == "queue.apply":
        command["spec"] = {"name": "q", "weight": 1.0}
    elif kind == "pool.apply":
        command["spec"] = {"name": "pool", "provider": "local"}
    return command


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside a command a value could be damaged."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


@st.composite
def damaged(draw: st.DrawFn, command: dict[str, Any]) -> dict[str, Any]:
    """The command with one thing wrong: a key dropped, a value of the wrong type or
    size, an unknown key, or an unknown type."""
    command = copy.deepcopy(command)
    paths = [p for p in _paths(command) if p != ("id",)]
    how = draw(st.sampled_from(["drop", "junk", "junk", "extra", "type"]))
    if how == "type":
        command["type"] = draw(st.sampled_from(["nope", "", None, 7, "gc.", "job.Register"]))
        return command
    if not paths:
        return command
    path = draw(st.sampled_from(paths))
    parent: Any = command
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "drop" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpected_" + str(last)] = draw(st.sampled_from(JUNK))
    else:
        parent[last] = draw(st.sampled_from(JUNK))
    return command


@st.composite
def step(draw: st.DrawFn, sm: StateMachine, n: int) -> dict[str, Any]:
    command = draw(well_formed(sm))
    if draw(st.integers(0, 3)) == 0:  # a leader loop's command: it carries a claim
        command["claim"] = draw(st.sampled_from(CLAIMS))
    if draw(st.integers(0, 2)) == 0:
        command = draw(damaged(command))
    command["id"] = f"c{n}"
    command.setdefault("time", float(n))
    return command


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_any_command_sequence_is_applied_or_rejected_without_a_trace(data) -> None:
    sm = StateMachine()
    commands = []
    for n in range(40):
        command = data.draw(step(sm, n))
        commands.append(copy.deepcopy(command))
        before = digest(sm)
        crowded = over_committed(sm)
        result = sm.apply(command)  # never raises
        assert isinstance(result, dict) and isinstance(result.get("ok"), bool)
        if not result["ok"]:
            assert 400 <= result["status"] < 500, result
            assert digest(sm) == before, f"rejected {command['type']} changed the state"
        elif command["type"] == "plan.apply":
            for node_id, (cpu, memory) in over_committed(sm).items():
                was = crowded.get(node_id)
                assert was is not None, f"plan over-committed {node_id}"
                assert cpu <= was[0] and memory <= was[1], f"plan grew {node_id}"
        assert_invariants(sm)
    twin = StateMachine()
    for command in commands:
        twin.apply(copy.deepcopy(command))
    assert digest(twin) == digest(sm)
    assert [list(getattr(twin, t)) for t in machine_module.TABLES] == [
        list(getattr(sm, t)) for t in machine_module.TABLES]
    revived = pickle.loads(pickle.dumps(sm))
    assert digest(revived) == digest(sm)
    assert_invariants(revived)


# -- the inputs that once stopped a cluster ---------------------------------------------
def _machine_with_work() -> StateMachine:
    sm = StateMachine()
    sm.apply({"id": "n", "type": "node.register", "time": 1.0, "node": {
        "id": "id-n1", "name": "n1", "token_hash": "h",
        "capacity": {"cpu_milli": 2000, "memory_mib": 2048}}})
    sm.apply({"id": "j", "type": "job.register", "time": 1.0, "spec": {
        "id": "web", "type": "service", "groups": [{"name": "g", "count": 1}]}})
    sm.apply({"id": "p", "type": "plan.apply", "time": 2.0, "job_id": "web", "job_version": 1,
              "allocations": [{"id": "a1", "job_id": "web", "group": "g", "node_id": "id-n1",
                               "resources": {"cpu_milli": 500, "memory_mib": 64}}]})
    return sm


@pytest.mark.parametrize(("damage", "field"), [
    (lambda s: s["nodes"][0].pop("name"), "nodes[0].name"),
    (lambda s: s["allocations"][0].pop("job_id"), "allocations[0].job_id"),
    (lambda s: s["allocations"][0].update(job_id="ghost"), "allocations[0].job_id"),
    (lambda s: s["allocations"][0].update(node_id="ghost"), "allocations[0].node_id"),
    (lambda s: s["jobs"][0]["spec"].pop("groups"), "jobs[0].spec.groups"),
    (lambda s: s["jobs"][0].update(version="2"), "jobs[0].version"),
    (lambda s: s["nodes"].append(dict(s["nodes"][0], id="other")), "nodes[1].name"),
    (lambda s: s.update(index=-4), "index"),
    (lambda s: s.update(version=99), "version"),
])
def test_a_damaged_snapshot_is_refused_whole_with_the_field_named(damage, field) -> None:
    sm = _machine_with_work()
    snapshot = sm.snapshot()
    damage(snapshot)
    before = digest(sm)
    result = sm.apply({"id": "r", "type": "state.restore", "time": 5.0, "snapshot": snapshot})
    assert result["ok"] is False and result["status"] == 400
    assert result["error"]["field"] == field
    assert digest(sm) == before


def test_a_good_snapshot_restores_whole() -> None:
    sm = _machine_with_work()
    snapshot = sm.snapshot()
    fresh = StateMachine()
    result = fresh.apply({"id": "r", "type": "state.restore", "time": 5.0,
                          "snapshot": snapshot})
    assert result["ok"], result
    assert fresh.allocations == sm.allocations and fresh.jobs == sm.jobs
    assert_invariants(fresh)


def test_whatever_a_handler_wrote_before_failing_unexpectedly_is_undone(monkeypatch) -> None:
    sm = _machine_with_work()
    before = digest(sm)

    def half_then_crash(machine: StateMachine, command: dict) -> dict:
        machine._bump()
        machine.jobs["web"] = {**machine.jobs["web"], "stopped": True}
        machine.put_allocation({**machine.allocations["a1"], "client_status": "lost"})
        machine.put_allocation({"id": "a9", "job_id": "new", "group": "g", "node_id": "id-n1",
                                "desired_status": "run", "client_status": "running",
                                "resources": {"cpu_milli": 1}})
        del machine.nodes["id-n1"]
        machine.node_ids_by_name.pop("n1")
        raise KeyError("boom")

    monkeypatch.setitem(machine_module._HANDLERS, "crash", half_then_crash)
    first = sm.apply({"id": "x", "type": "crash", "time": 3.0})
    assert first == {"ok": False, "index": 1 + 2, "status": 400, "error": {
        "code": "invalid", "message": "command rejected: KeyError: 'boom'"}}
    assert digest(sm) == before
    assert_invariants(sm)
    assert sm.apply({"id": "x", "type": "crash", "time": 3.0}) == first  # recorded


def test_a_plan_that_fails_late_changes_nothing_not_even_the_index() -> None:
    sm = _machine_with_work()
    before = digest(sm)
    result = sm.apply({"id": "bad", "type": "plan.apply", "time": 3.0, "job_id": "web",
                       "job_version": 1, "allocations": [
                           {"id": "a2", "job_id": "web", "group": "g", "node_id": "id-n1",
                            "resources": {"cpu_milli": "lots"}}]})
    assert result["ok"] is False and result["error"]["field"] == "allocations[0].resources"
    assert digest(sm) == before


@pytest.mark.parametrize("command", [
    {"type": "job.register", "spec": {"id": "x", "type": "batch", "groups": [{"name": "g"}]}},
    {"type": "job.register", "spec": {"id": "x", "groups": []}},
    {"type": "node.register", "node": {"id": "i", "name": "n", "token_hash": "h",
                                       "capacity": {"cpu_milli": float("inf")}}},
    {"type": "node.register", "node": {"id": "id-n1", "name": "other", "token_hash": "h"}},
    {"type": "node.drain", "node_id": "id-n1", "deadline": float("nan")},
    {"type": "alloc.update_status", "updates": [{"id": "a1", "client_status": "running",
                                                 "exit_code": "zero"}]},
    {"type": "alloc.update_status", "updates": [{"id": ["a1"], "client_status": "running"}]},
    {"type": "job.blocked", "job_id": "web", "unplaced": {"g": "not a report"}},
    {"type": "gc", "time": 9.0, "policy": {"periodic_keep": -1}},
    {"type": "state.restore", "snapshot": None},
    {"type": ["list"]},
    {"type": "noop", "time": "late"},
    {"type": "leader.claim", "leader": 7},
])
def test_a_malformed_command_is_a_4xx_and_changes_nothing(command) -> None:
    sm = _machine_with_work()
    before = digest(sm)
    result = sm.apply({"id": "m", "time": 4.0, **command})
    assert result["ok"] is False and 400 <= result["status"] < 500, result
    assert digest(sm) == before


def test_a_command_that_is_not_a_mapping_is_rejected() -> None:
    assert StateMachine().apply(["noop"])["ok"] is False  # type: ignore[arg-type]
