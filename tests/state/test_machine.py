"""The state machine, specified command by command, without Raft."""

from __future__ import annotations

import copy
import pickle

import pytest

from federation.state.machine import DEDUPE_WINDOW_SECONDS, StateMachine
from tests import placing


def spec(job_id: str = "etl", **extra) -> dict:
    return {"id": job_id, "type": "batch", "depends_on": [],
            "groups": [{"name": "w", "count": 2}], **extra}


def node(name: str = "n1", node_id: str = "id-n1") -> dict:
    return {"id": node_id, "name": name, "token_hash": "h",
            "capacity": {"cpu_milli": 1000, "memory_mib": 512, "gpu": 0}}


class Log:
    """Applies numbered commands to a fresh machine."""

    def __init__(self) -> None:
        self.sm = StateMachine()
        self.n = 0

    def __call__(self, type_: str, time: float = 100.0, **fields) -> dict:
        self.n += 1
        return self.sm.apply({"id": f"c{self.n}", "type": type_, "time": time, **fields})


@pytest.fixture
def log() -> Log:
    return Log()


def place(log: Log, *allocations: dict) -> None:
    """Allocations as the cluster brings them about: placed by a plan, then reported on."""
    placing.place(lambda c: log(c["type"], **{k: v for k, v in c.items() if k != "type"}),
                  list(allocations))


def test_a_new_job_gets_version_1_and_the_index_moves(log: Log) -> None:
    result = log("job.register", spec=spec())
    assert result == {"ok": True, "index": 1,
                      "value": {"id": "etl", "version": 1, "changed": True, "index": 1}}
    assert log.sm.jobs["etl"]["create_index"] == 1


def test_resubmitting_the_same_spec_creates_no_version(log: Log) -> None:
    log("job.register", spec=spec())
    again = log("job.register", spec=spec())
    assert again["value"] == {"id": "etl", "version": 1, "changed": False, "index": 1}
    assert log.sm.index == 1


def test_a_changed_spec_creates_the_next_version(log: Log) -> None:
    log("job.register", spec=spec())
    changed = log("job.register", spec=spec(priority=90))
    assert changed["value"]["version"] == 2
    assert log.sm.jobs["etl"]["create_index"] == 1
    assert log.sm.jobs["etl"]["modify_index"] == 2


def test_a_command_id_is_applied_once(log: Log) -> None:
    command = {"id": "same", "type": "job.register", "time": 1.0, "spec": spec()}
    first = log.sm.apply(command)
    log("job.deregister", job_id="etl")
    replay = log.sm.apply(command)
    assert replay == first
    assert log.sm.jobs["etl"]["stopped"] is True


def test_remembered_command_ids_expire_after_the_window(log: Log) -> None:
    log.sm.apply({"id": "old", "type": "noop", "time": 0.0})
    log("noop", time=DEDUPE_WINDOW_SECONDS + 10)
    assert "old" not in log.sm.applied


@pytest.mark.parametrize(
    ("command", "status", "field"),
    [
        ({"type": "job.register", "spec": "nope"}, 400, "spec"),
        ({"type": "job.register", "spec": spec(depends_on=["missing"])}, 400, "depends_on[0]"),
        ({"type": "job.deregister", "job_id": "missing"}, 404, "job_id"),
        ({"type": "node.heartbeat", "node_id": "missing"}, 404, "node_id"),
        ({"type": "node.drain", "node_id": "id-n1", "draining": "yes"}, 400, "draining"),
        ({"type": "alloc.stop", "alloc_ids": ["missing"]}, 404, "alloc_ids[0]"),
        ({"type": "alloc.stop", "alloc_ids": []}, 400, "alloc_ids"),
        ({"type": "alloc.stop", "alloc_ids": "a0"}, 400, "alloc_ids"),
        ({"type": "alloc.stop", "alloc_ids": [7]}, 400, "alloc_ids[0]"),
        ({"type": "alloc.stop", "alloc_ids": ["missing"], "reason": 3}, 400, "reason"),
        ({"type": "alloc.upsert", "allocations": []}, 400, "type"),
        ({"type": "alloc.update_status", "updates": [{"id": "missing"}]}, 404, "updates[0].id"),
        ({"type": "teleport"}, 400, "type"),
    ],
)
def test_a_rejected_command_names_the_field_and_changes_nothing(log: Log, command, status,
                                                                  field) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    before = copy.deepcopy(log.sm.snapshot())
    result = log(command.pop("type"), **command)
    assert result["ok"] is False
    assert result["status"] == status
    assert result["error"]["field"] == field
    assert log.sm.snapshot() == before


def test_a_node_re_registering_by_name_keeps_its_id(log: Log) -> None:
    log("node.register", node=node("host-a", "first-id"))
    again = log("node.register", node=node("host-a", "second-id"))
    assert again["value"] == {"id": "first-id", "reregistered": True}
    assert list(log.sm.nodes) == ["first-id"]


def test_a_node_is_marked_down_only_if_no_heartbeat_came_since(log: Log) -> None:
    log("node.register", time=10.0, node=node())
    log("node.heartbeat", time=20.0, node_id="id-n1")
    stale = log("node.mark_down", node_id="id-n1", last_heartbeat_seen=10.0)
    assert stale["value"]["changed"] is False
    assert log.sm.nodes["id-n1"]["status"] == "ready"
    current = log("node.mark_down", node_id="id-n1", last_heartbeat_seen=20.0)
    assert current["value"]["changed"] is True
    assert log.sm.nodes["id-n1"]["status"] == "down"
    log("node.heartbeat", time=30.0, node_id="id-n1")
    assert log.sm.nodes["id-n1"]["status"] == "ready"


def test_dependency_cycles_are_refused(log: Log) -> None:
    log("job.register", spec=spec("a"))
    log("job.register", spec=spec("b", depends_on=["a"]))
    cycle = log("job.register", spec=spec("a", depends_on=["b"]))
    assert cycle["error"]["field"] == "depends_on"


def test_stopping_a_job_asks_its_allocations_to_stop(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, *({"id": f"a{i}", "job_id": "etl", "group": "w", "index": i, "node_id": "id-n1"}
                 for i in range(2)))
    log("alloc.update_status", updates=[{"id": "a0", "client_status": "running"}])
    assert log.sm.job_status(log.sm.jobs["etl"]) == "running"
    log("job.deregister", job_id="etl")
    assert {a["desired_status"] for a in log.sm.allocations.values()} == {"stop"}
    assert log.sm.job_status(log.sm.jobs["etl"]) == "dead"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), "pending"),
        (("running", "pending"), "running"),
        (("complete", "complete"), "complete"),
        (("complete", "failed"), "degraded"),  # a failed copy waits to be placed again
        (("running", "failed"), "degraded"),
    ],
)
def test_a_batch_job_status_follows_its_allocations(log: Log, statuses, expected) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, *({"id": f"a{i}", "job_id": "etl", "group": "w", "node_id": "id-n1",
                  "index": i, "client_status": status} for i, status in enumerate(statuses)))
    assert log.sm.job_status(log.sm.jobs["etl"]) == expected


def test_a_batch_job_is_complete_only_when_every_wanted_instance_succeeded(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    # Index 0 succeeded; index 1's first copy reported complete after it was told to stop
    # (replaced when its node was lost), and its replacement still runs.
    place(log,
          {"id": "a0", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1",
           "client_status": "complete"},
          {"id": "old1", "job_id": "etl", "group": "w", "index": 1, "node_id": "id-n1",
           "client_status": "complete", "desired_status": "stop"},
          {"id": "new1", "job_id": "etl", "group": "w", "index": 1, "node_id": "id-n1",
           "client_status": "running"})
    assert log.sm.job_status(log.sm.jobs["etl"]) == "running"
    # Two successes of the same index are still one instance.
    log("alloc.update_status", updates=[{"id": "old1", "client_status": "stopped"}])
    place(log, {"id": "dup0", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1",
                "client_status": "complete"})
    log("alloc.update_status", updates=[{"id": "new1", "client_status": "stopped"}])
    assert log.sm.job_status(log.sm.jobs["etl"]) == "degraded"  # short of a copy
    log("alloc.update_status", updates=[{"id": "new1", "client_status": "complete"}])
    assert log.sm.job_status(log.sm.jobs["etl"]) == "complete"


def test_an_agent_may_only_update_its_own_allocations(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1"})
    other = log("alloc.update_status", node_id="someone-else",
                updates=[{"id": "a0", "client_status": "running"}])
    assert other["status"] == 409


def test_alloc_stop_tells_running_allocations_to_stop_with_the_reason(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, *({"id": f"a{i}", "job_id": "etl", "group": "w", "index": i, "node_id": "id-n1"}
                 for i in range(2)))
    before = log.sm.index
    result = log("alloc.stop", alloc_ids=["a0", "a0"], reason="operator asked")
    assert result["value"] == {"stopped": ["a0"], "index": before + 1}
    stopped = log.sm.allocations["a0"]
    assert stopped["desired_status"] == "stop"
    assert stopped["desired_description"] == "operator asked"
    assert stopped["modify_index"] == before + 1
    assert log.sm.allocations["a1"]["desired_status"] == "run"


def test_alloc_stop_of_stopped_allocations_changes_nothing(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1"})
    log("alloc.stop", alloc_ids=["a0"])
    before = copy.deepcopy(log.sm.snapshot())
    again = log("alloc.stop", alloc_ids=["a0"], reason="again")
    assert again["value"] == {"stopped": [], "index": before["index"]}
    assert log.sm.snapshot() == before


def test_alloc_stop_naming_one_unknown_allocation_stops_none(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1"})
    result = log("alloc.stop", alloc_ids=["a0", "gone"])
    assert result["status"] == 404 and result["error"]["field"] == "alloc_ids[1]"
    assert log.sm.allocations["a0"]["desired_status"] == "run"


def test_records_are_replaced_never_modified_in_place(log: Log) -> None:
    log("node.register", node=node())
    held = log.sm.nodes["id-n1"]
    log("node.heartbeat", time=500.0, node_id="id-n1")
    assert held["last_heartbeat"] == 100.0
    assert log.sm.nodes["id-n1"]["last_heartbeat"] == 500.0


def test_snapshot_round_trips_and_restore_is_a_command(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    snap = log.sm.snapshot()
    restored = StateMachine.from_snapshot(snap)
    assert restored.snapshot() == snap
    other = Log()
    result = other("state.restore", snapshot=snap)
    assert result["value"] == {"nodes": 1, "jobs": 1, "allocations": 0}
    assert other.sm.jobs == log.sm.jobs
    assert other.sm.index > snap["index"]


def test_a_malformed_snapshot_is_refused_without_damage(log: Log) -> None:
    log("job.register", spec=spec())
    result = log("state.restore", snapshot={"version": 1, "jobs": "garbage"})
    assert result["ok"] is False
    assert "etl" in log.sm.jobs


def test_the_same_log_gives_the_same_state_on_every_replica() -> None:
    commands = [
        {"id": "1", "type": "node.register", "time": 1.0, "node": node()},
        {"id": "2", "type": "job.register", "time": 2.0, "spec": spec()},
        {"id": "3", "type": "node.heartbeat", "time": 3.0, "node_id": "id-n1"},
        {"id": "4", "type": "job.deregister", "time": 4.0, "job_id": "etl"},
    ]
    replicas = [StateMachine() for _ in range(3)]
    for replica in replicas:
        for command in commands:
            replica.apply(pickle.loads(pickle.dumps(command)))
    assert replicas[0].snapshot() == replicas[1].snapshot() == replicas[2].snapshot()
    assert pickle.loads(pickle.dumps(replicas[0])).snapshot() == replicas[0].snapshot()


def test_a_restored_snapshot_keeps_this_clusters_servers(log: Log) -> None:
    log("server.upsert", server={"id": "s1", "raft": "10.0.0.1:4790", "http": "http://a"})
    elsewhere = StateMachine()
    elsewhere.apply({"id": "x", "type": "server.upsert", "time": 1.0,
                     "server": {"id": "other", "raft": "10.9.9.9:1", "http": "http://b"}})
    log("state.restore", snapshot=elsewhere.snapshot())
    assert list(log.sm.servers) == ["s1"]


def test_an_agent_cannot_rewrite_placement_fields(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1"})
    result = log("alloc.update_status", updates=[
        {"id": "a0", "client_status": "running", "node_id": "elsewhere"}])
    assert result["error"]["field"] == "updates[0].node_id"
    assert log.sm.allocations["a0"]["client_status"] == "pending"


def test_a_plan_places_stops_and_records_what_did_not_fit(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "old", "job_id": "etl", "group": "w", "node_id": "id-n1"})
    result = log("plan.apply", job_id="etl", job_version=1,
                 allocations=[{"id": "new", "job_id": "etl", "group": "w", "index": 0,
                               "node_id": "id-n1"}],
                 stops=["old"], unplaced={"w": {"unplaced": 1}})
    assert result["value"] == {"placed": 1, "stopped": 1, "evicted": 0, "refused": 0,
                               "refused_nodes": [], "duplicates": 0}
    assert log.sm.allocations["old"]["desired_status"] == "stop"
    assert log.sm.jobs["etl"]["unplaced"] == {"w": {"unplaced": 1}}


def test_a_plan_for_an_older_job_version_is_refused(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("job.register", spec=spec(priority=99))
    stale = log("plan.apply", job_id="etl", job_version=1, allocations=[
        {"id": "x", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1"}])
    assert stale["status"] == 409
    assert "x" not in log.sm.allocations


def test_a_decision_of_a_replaced_leader_is_refused(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("leader.claim", leader="s1:a")
    log("leader.claim", leader="s2:b")  # s2 took over; s1 has not noticed yet
    late = log("plan.apply", claim="s1:a", job_id="etl", job_version=1, allocations=[
        {"id": "x", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1"}])
    assert late["status"] == 409 and late["error"]["field"] == "claim"
    assert "x" not in log.sm.allocations
    current = log("plan.apply", claim="s2:b", job_id="etl", job_version=1, allocations=[
        {"id": "y", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1"}])
    assert current["ok"] and "y" in log.sm.allocations
    # Commands that carry no claim (users', agents') are not leaders' decisions.
    assert log("noop")["ok"]


def test_a_claim_survives_a_raft_snapshot(log: Log) -> None:
    log("leader.claim", leader="s2:b")
    copy_ = pickle.loads(pickle.dumps(log.sm))
    assert copy_.apply({"id": "z", "type": "noop", "claim": "s1:a"})["status"] == 409


def test_a_batch_index_out_of_attempts_fails_the_job(log: Log) -> None:
    log("job.register", spec=spec())
    log("plan.apply", job_id="etl", job_version=1, exhausted={"w": [0]})
    assert log.sm.job_status(log.sm.jobs["etl"]) == "failed"


def test_a_node_marked_down_loses_its_live_allocations(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", time=10.0, node=node())
    place(log,
          {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1",
           "client_status": "running"},
          {"id": "a1", "job_id": "etl", "group": "w", "node_id": "id-n1",
           "client_status": "complete"})
    result = log("node.mark_down", node_id="id-n1", last_heartbeat_seen=10.0)
    assert result["value"]["lost"] == 1
    assert log.sm.allocations["a0"]["client_status"] == "lost"
    assert log.sm.allocations["a0"]["desired_status"] == "stop"
    assert log.sm.allocations["a1"]["client_status"] == "complete"


def test_restored_nodes_get_a_fresh_heartbeat_time(log: Log) -> None:
    log("node.register", time=10.0, node=node())
    snap = log.sm.snapshot()
    other = Log()
    other("state.restore", time=5000.0, snapshot=snap)
    assert other.sm.nodes["id-n1"]["last_heartbeat"] == 5000.0


# ---- the plan applier's re-check ------------------------------------------------------


def placement(alloc_id: str, node_id: str = "id-n1", cpu: int = 400, group: str = "w",
              **resources) -> dict:
    return {"id": alloc_id, "job_id": "etl", "group": group, "index": 0, "node_id": node_id,
            "resources": {"cpu_milli": cpu, "memory_mib": 64, **resources}}


def test_placements_that_no_longer_fit_their_node_are_refused_and_the_rest_lands(
        log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("node.register", node=node("n2", "id-n2"))
    log("plan.apply", job_id="etl", job_version=1, allocations=[placement("a"), placement("b")])
    result = log("plan.apply", job_id="etl", job_version=1, allocations=[
        placement("c"), placement("d", "id-n2")])  # n1 has 200 of 1000 millicores left
    assert result["value"]["placed"] == 1
    assert result["value"]["refused"] == 1 and result["value"]["refused_nodes"] == ["id-n1"]
    assert "c" not in log.sm.allocations and "d" in log.sm.allocations
    assert log.sm.node_usage.cpu_milli == {"id-n1": 800, "id-n2": 400}


def test_a_gang_that_loses_one_instance_loses_all_of_them(log: Log) -> None:
    gang = {"id": "etl", "type": "batch", "depends_on": [],
            "groups": [{"name": "g", "count": 2, "gang": True}]}
    log("job.register", spec=gang)
    log("node.register", node=node())
    log("node.register", node=node("n2", "id-n2"))
    result = log("plan.apply", job_id="etl", job_version=1, allocations=[
        placement("a", "id-n1", cpu=600, group="g"), placement("b", "id-n2", cpu=1200, group="g")])
    assert result["value"]["placed"] == 0 and result["value"]["refused_nodes"] == ["id-n2"]
    assert log.sm.allocations == {}


def test_stops_and_evictions_in_the_same_plan_free_their_room_first(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("plan.apply", job_id="etl", job_version=1, allocations=[placement("old", cpu=900)])
    result = log("plan.apply", job_id="etl", job_version=1,
                 allocations=[placement("new", cpu=900)], stops=["old"])
    assert result["value"]["placed"] == 1
    assert log.sm.node_usage.cpu_milli == {"id-n1": 900}


def test_placements_on_a_draining_or_down_node_are_refused(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("node.drain", node_id="id-n1", draining=True)
    result = log("plan.apply", job_id="etl", job_version=1, allocations=[placement("a")])
    assert result["value"]["refused_nodes"] == ["id-n1"] and log.sm.allocations == {}


def test_a_gpu_device_is_not_given_twice(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node={**node(), "capacity": {"cpu_milli": 8000, "memory_mib": 4096,
                                                       "gpu": 2}})
    log("plan.apply", job_id="etl", job_version=1,
        allocations=[placement("a", gpu=1, gpu_devices=[0])])
    refused = log("plan.apply", job_id="etl", job_version=1,
                  allocations=[placement("b", gpu=1, gpu_devices=[0])])
    assert refused["value"]["placed"] == 0
    shared = log("plan.apply", job_id="etl", job_version=1,
                 allocations=[placement("c", gpu=0.5, gpu_devices=[1]),
                              placement("d", gpu=0.5, gpu_devices=[1])])
    assert shared["value"]["placed"] == 2
    assert log.sm.node_usage.gpu_used("id-n1", 2) == [1000, 1000]


def test_node_usage_follows_every_way_an_allocation_ends(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", time=10.0, node=node())
    log("plan.apply", job_id="etl", job_version=1,
        allocations=[placement("a", cpu=100), placement("b", cpu=200), placement("c", cpu=300)])
    assert log.sm.node_usage.cpu_milli["id-n1"] == 600
    log("alloc.update_status", updates=[{"id": "a", "client_status": "complete"}])
    assert log.sm.node_usage.cpu_milli["id-n1"] == 500
    log("job.deregister", job_id="etl")
    assert log.sm.node_usage.cpu_milli == {}
    rebuilt = StateMachine.from_snapshot(log.sm.snapshot())
    assert rebuilt.node_usage.cpu_milli == log.sm.node_usage.cpu_milli


def test_a_machine_pickled_without_node_usage_rebuilds_it(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    log("plan.apply", job_id="etl", job_version=1, allocations=[placement("a")])
    state = dict(log.sm.__dict__)
    del state["node_usage"]
    older = StateMachine.__new__(StateMachine)
    older.__setstate__(state)
    assert older.node_usage.cpu_milli == {"id-n1": 400}
    assert pickle.loads(pickle.dumps(log.sm)).node_usage.cpu_milli == {"id-n1": 400}


def test_the_servers_stamp_when_an_allocation_ended_in_their_own_clock(log: Log) -> None:
    log("job.register", spec=spec())
    log("node.register", node=node())
    place(log, {"id": "a0", "job_id": "etl", "group": "w", "node_id": "id-n1",
                "resources": {"cpu_milli": 100, "memory_mib": 64}, "client_status": "running"})
    log("alloc.update_status", time=700.0,
        updates=[{"id": "a0", "client_status": "failed", "finished_at": 5.0}])
    assert log.sm.allocations["a0"]["ended_time"] == 700.0
    log("alloc.update_status", time=900.0, updates=[{"id": "a0", "client_status": "failed"}])
    assert log.sm.allocations["a0"]["ended_time"] == 700.0  # the first report counts
    refused = log("alloc.update_status", updates=[{"id": "a0", "client_status": "failed",
                                                   "ended_time": 1.0}])
    assert refused["status"] == 400 and refused["error"]["field"] == "updates[0].ended_time"


def test_each_update_keeps_the_previous_spec_as_a_numbered_version(log: Log) -> None:
    log("job.register", spec=spec())
    for count in range(3, 15):  # versions 2 … 13 (version v runs v + 1 copies)
        base = spec()
        log("job.register", time=100.0 + count,
            spec={**base, "groups": [{**base["groups"][0], "count": count}]})
    job = log.sm.jobs["etl"]
    assert job["version"] == 13
    assert [h["version"] for h in job["history"]] == list(range(3, 13))  # the last 10
    assert job["history"][-1]["spec"]["groups"][0]["count"] == 13
    reverted = log("job.revert", time=500.0, job_id="etl", version=5)
    assert reverted["ok"] and reverted["value"]["reverted_to"] == 5
    assert reverted["value"]["version"] == 14
    job = log.sm.jobs["etl"]
    assert job["spec"]["groups"][0]["count"] == 6 and job["submit_time"] == 500.0
    assert job["history"][-1]["version"] == 13 and len(job["history"]) == 10


@pytest.mark.parametrize(("fields", "status", "field"), [
    ({"job_id": "etl", "version": 9}, 404, "version"),
    ({"job_id": "etl", "version": "1"}, 400, "version"),
    ({"job_id": "etl", "version": 0}, 400, "version"),
    ({"job_id": "etl"}, 400, "version"),
    ({"job_id": "nope", "version": 1}, 404, "job_id"),
    ({"version": 1}, 400, "job_id"),
])
def test_a_revert_to_a_version_not_kept_is_refused_naming_the_field(
        log: Log, fields, status, field) -> None:
    log("job.register", spec=spec())
    before = log.sm.index
    result = log("job.revert", **fields)
    assert not result["ok"] and result["status"] == status
    assert result["error"]["field"] == field
    assert log.sm.index == before
