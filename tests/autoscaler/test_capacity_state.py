"""Launch records, terminations and the activity log in the pure state machine (no Raft)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from federation.state import capacity
from federation.state.machine import StateMachine

_ids = itertools.count()
POOL = {"name": "burst", "provider": "aws", "region": "us-east-1", "max_nodes": 10}


def cmd(type_: str, t: float = 100.0, **fields: Any) -> dict[str, Any]:
    return {"id": f"c{next(_ids)}", "type": type_, "time": t, **fields}


def launch(token: str = "tok-1", **extra: Any) -> dict[str, Any]:
    body = {"token": token, "pool": "burst", "provider": "aws", "instance_type": "m5.large",
            "count": 2, "spot": False, "zones": ["us-east-1a"], "price_per_hour": 0.096,
            "hourly_cost": 0.192, "reason": "2 pending tasks"}
    body.update(extra)
    return cmd("launch.begin", launch=body)


@pytest.fixture
def sm() -> StateMachine:
    machine = StateMachine()
    assert machine.apply(cmd("pool.apply", spec=POOL))["ok"]
    return machine


def test_launch_begin_records_a_pending_launch_before_any_outcome(sm):
    before = sm.index
    result = sm.apply(launch())
    assert result["ok"] and result["value"] == {"token": "tok-1", "status": "pending",
                                                "changed": True}
    record = sm.launches["tok-1"]
    assert (record["kind"], record["status"], record["count"]) == ("launch", "pending", 2)
    assert (record["pool"], record["instance_type"], record["hourly_cost"]) == (
        "burst", "m5.large", 0.192)
    assert record["began_at"] == 100.0 and record["instances"] == {}
    assert sm.index == before + 1


def test_launch_begin_with_a_known_token_changes_nothing(sm):
    sm.apply(launch())
    index = sm.index
    again = sm.apply(launch(count=5))
    assert again["ok"] and again["value"]["changed"] is False
    assert sm.launches["tok-1"]["count"] == 2 and sm.index == index


@pytest.mark.parametrize(("override", "field"), [
    ({"pool": "nope"}, "launch.pool"),
    ({"count": 0}, "launch.count"),
    ({"count": True}, "launch.count"),
    ({"count": 2.5}, "launch.count"),
    ({"instance_type": ""}, "launch.instance_type"),
    ({"reason": None}, "launch.reason"),
    ({"hourly_cost": -1}, "launch.hourly_cost"),
    ({"hourly_cost": float("nan")}, "launch.hourly_cost"),
    ({"zones": "us-east-1a"}, "launch.zones"),
    ({"token": ""}, "launch.token"),
])
def test_launch_begin_rejects_bad_fields_and_writes_nothing(sm, override, field):
    index = sm.index
    result = sm.apply(launch(**override))
    assert not result["ok"] and result["error"]["field"] == field
    assert sm.launches == {} and sm.index == index


@pytest.mark.parametrize(("instances", "error", "status", "shortfall"), [
    (["i-1", "i-2"], None, "done", 0),
    (["i-1"], None, "partial", 1),
    ([], "provider_capacity: no m5.large", "failed", 2),
    ([], None, "failed", 2),
])
def test_launch_end_records_the_outcome(sm, instances, error, status, shortfall):
    sm.apply(launch())
    result = sm.apply(cmd("launch.end", t=105.0, token="tok-1", instances=instances,
                          failures=["m5.large spot: capacity"], error=error))
    assert result["ok"] and result["value"]["status"] == status
    record = sm.launches["tok-1"]
    assert record["status"] == status and record["shortfall"] == shortfall
    assert record["instances"] == dict.fromkeys(instances, "running")
    assert record["ended_at"] == 105.0 and record["error"] == error


def test_launch_end_twice_keeps_the_first_outcome(sm):
    sm.apply(launch())
    sm.apply(cmd("launch.end", token="tok-1", instances=["i-1", "i-2"]))
    index = sm.index
    again = sm.apply(cmd("launch.end", token="tok-1", instances=[], error="late"))
    assert again["ok"] and again["value"]["changed"] is False
    assert sm.launches["tok-1"]["status"] == "done" and sm.index == index


def test_launch_end_of_an_unknown_token_is_not_found(sm):
    result = sm.apply(cmd("launch.end", token="nope", instances=[]))
    assert not result["ok"] and result["status"] == 404


def test_termination_moves_instances_through_terminating_to_terminated(sm):
    sm.apply(launch())
    sm.apply(cmd("launch.end", token="tok-1", instances=["i-1", "i-2"]))
    begin = sm.apply(cmd("instance.terminate.begin", termination={
        "token": "t-1", "pool": "burst", "provider": "aws", "instance_ids": ["i-1"],
        "node_ids": ["n-1"], "reason": "idle", "hourly_cost": 0.096}))
    assert begin["ok"]
    assert sm.launches["tok-1"]["instances"] == {"i-1": "terminating", "i-2": "running"}
    assert sm.launches["t-1"]["status"] == "pending"
    sm.apply(cmd("instance.terminate.end", token="t-1"))
    assert sm.launches["tok-1"]["instances"] == {"i-1": "terminated", "i-2": "running"}
    assert sm.launches["t-1"]["status"] == "done"


def test_a_failed_termination_leaves_the_instances_running(sm):
    sm.apply(launch())
    sm.apply(cmd("launch.end", token="tok-1", instances=["i-1", "i-2"]))
    sm.apply(cmd("instance.terminate.begin", termination={
        "token": "t-1", "pool": "burst", "provider": "aws", "instance_ids": ["i-1"],
        "reason": "idle"}))
    sm.apply(cmd("instance.terminate.end", token="t-1", error="provider_auth: denied"))
    assert sm.launches["tok-1"]["instances"]["i-1"] == "running"
    assert sm.launches["t-1"]["status"] == "failed"


@pytest.mark.parametrize(("termination", "field"), [
    ({"instance_ids": []}, "termination.instance_ids"),
    ({"instance_ids": [1]}, "termination.instance_ids"),
    ({"reason": ""}, "termination.reason"),
    ({"pool": None}, "termination.pool"),
])
def test_termination_begin_rejects_bad_fields(sm, termination, field):
    body = {"token": "t-1", "pool": "burst", "provider": "aws", "instance_ids": ["i-1"],
            "reason": "idle", **termination}
    result = sm.apply(cmd("instance.terminate.begin", termination=body))
    assert not result["ok"] and result["error"]["field"] == field
    assert "t-1" not in sm.launches


def test_notes_record_decisions_not_acted_upon(sm):
    result = sm.apply(cmd("autoscaler.record", note={
        "token": "n-1", "action": "launch", "pool": "burst", "reason": "would launch 2",
        "hourly_cost": 0.192, "dry_run": True}))
    assert result["ok"]
    note = sm.launches["n-1"]
    assert (note["kind"], note["dry_run"], note["status"]) == ("note", True, "recorded")


def test_the_activity_log_keeps_in_flight_records_and_the_last_n_settled(sm, monkeypatch):
    monkeypatch.setattr(capacity, "ACTIVITY_LIMIT", 3)
    sm.apply(launch("live"))
    sm.apply(cmd("launch.end", token="live", instances=["i-1"]))  # an instance still runs
    sm.apply(launch("open"))  # still pending
    for i in range(6):
        sm.apply(cmd("autoscaler.record", note={"token": f"n-{i}", "action": "launch",
                                                 "reason": "dry run"}))
    assert set(sm.launches) == {"live", "open", "n-3", "n-4", "n-5"}


def test_a_drain_pending_release_outlives_the_activity_limit_until_the_node_stops_draining(
        sm, monkeypatch):
    monkeypatch.setattr(capacity, "ACTIVITY_LIMIT", 2)
    sm.apply(cmd("node.register", node={"id": "n1", "name": "n1", "token_hash": "h",
                                        "capacity": {"cpu_milli": 1000, "memory_mib": 512}}))
    sm.apply(cmd("node.drain", node_id="n1", draining=True))
    sm.apply(cmd("autoscaler.record", note={"token": "drain-n1", "action": "drain",
                                             "reason": "under 50%", "detail": {"node_id": "n1"}}))
    for i in range(5):
        sm.apply(cmd("autoscaler.record", note={"token": f"n-{i}", "action": "launch",
                                                 "reason": "dry run"}))
    assert "drain-n1" in sm.launches  # the next leader still knows to release n1
    sm.apply(cmd("node.drain", node_id="n1", draining=False))
    sm.apply(cmd("autoscaler.record", note={"token": "n-5", "action": "launch",
                                             "reason": "dry run"}))
    assert set(sm.launches) == {"n-4", "n-5"}


def test_two_machines_applying_the_same_log_hold_the_same_records():
    log = [cmd("pool.apply", spec=POOL), launch("a"), launch("b"),
           cmd("launch.end", token="a", instances=["i-1"]),
           cmd("instance.terminate.begin", termination={
               "token": "t", "pool": "burst", "provider": "aws", "instance_ids": ["i-1"],
               "reason": "idle"}),
           cmd("instance.terminate.end", token="t")]
    first, second = StateMachine(), StateMachine()
    for command in log:
        first.apply(dict(command))
        second.apply(dict(command))
    assert first.launches == second.launches and first.index == second.index


def test_launch_records_survive_a_snapshot_round_trip(sm):
    sm.apply(launch())
    sm.apply(cmd("launch.end", token="tok-1", instances=["i-1", "i-2"]))
    restored = StateMachine.from_snapshot(sm.snapshot())
    assert restored.launches == sm.launches
