"""``plan.apply`` carries the version of the fit rules it was planned under: a version the
state machine does not know is refused the same way on every server and changes nothing."""

from __future__ import annotations

from federation.model.fit import CHECK_VERSION
from federation.state.machine import StateMachine


def machine() -> StateMachine:
    sm = StateMachine()
    sm.apply({"id": "c1", "type": "job.register", "time": 1.0,
              "spec": {"id": "etl", "type": "batch", "depends_on": [],
                       "groups": [{"name": "w", "count": 1}]}})
    sm.apply({"id": "c2", "type": "node.register", "time": 1.0,
              "node": {"id": "id-n1", "name": "n1", "token_hash": "h",
                       "capacity": {"cpu_milli": 1000, "memory_mib": 512, "gpu": 0}}})
    return sm


def plan(version: object | None) -> dict:
    command = {"id": "c3", "type": "plan.apply", "time": 2.0, "job_id": "etl",
               "job_version": 1, "allocations": [
                   {"id": "a0", "job_id": "etl", "group": "w", "index": 0, "node_id": "id-n1",
                    "resources": {"cpu_milli": 100, "memory_mib": 64}}]}
    if version is not None:
        command["check_version"] = version
    return command


def test_a_plan_under_the_current_rules_lands() -> None:
    sm = machine()
    result = sm.apply(plan(CHECK_VERSION))
    assert result["ok"], result
    assert "a0" in sm.allocations


def test_a_plan_from_before_versions_is_read_as_version_1() -> None:
    sm = machine()
    assert sm.apply(plan(None))["ok"]


def test_an_unknown_version_is_refused_on_every_server_and_changes_nothing() -> None:
    outcomes = []
    for _ in range(2):  # two servers applying the same entry
        sm = machine()
        index = sm.index
        result = sm.apply(plan(CHECK_VERSION + 1))
        outcomes.append(result)
        assert not result["ok"]
        assert result["error"]["field"] == "check_version"
        assert sm.index == index and "a0" not in sm.allocations
    assert outcomes[0] == outcomes[1]
