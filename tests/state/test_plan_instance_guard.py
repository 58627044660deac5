"""The plan applier never lets an instance (a job's group and index) run twice: a placement
for an instance that already has a live allocation is dropped, unless the plan releases that
allocation or the placement names it as the copy it replaces."""

from __future__ import annotations

from typing import Any

from federation.model.fit import CHECK_VERSION
from federation.state.machine import StateMachine

_ids = iter(range(1, 1_000_000))


def command(kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"c{next(_ids)}", "type": kind, "time": 1.0, **fields}


def cluster(job_type: str = "service", gang: bool = False, count: int = 2) -> StateMachine:
    sm = StateMachine()
    group: dict[str, Any] = {"name": "w", "count": count}
    if gang:
        group["gang"] = True
    assert sm.apply(command("job.register", spec={
        "id": "web", "type": job_type, "depends_on": [], "groups": [group]}))["ok"]
    for name in ("n1", "n2"):
        assert sm.apply(command("node.register", node={
            "id": f"id-{name}", "name": name, "token_hash": "h",
            "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}))["ok"]
    return sm


def placement(alloc_id: str, index: int, node: str = "n1", **extra: Any) -> dict[str, Any]:
    return {"id": alloc_id, "job_id": "web", "group": "w", "index": index,
            "node_id": f"id-{node}", "resources": {"cpu_milli": 100, "memory_mib": 64},
            **extra}


def plan(sm: StateMachine, *placements: dict[str, Any], stops: tuple[str, ...] = (),
         version: int = CHECK_VERSION) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": "web", "job_version": sm.jobs["web"]["version"],
                              "allocations": list(placements), "stops": list(stops),
                              "check_version": version}
    result = sm.apply(command("plan.apply", **fields))
    assert result["ok"], result
    return result["value"]


def live(sm: StateMachine, index: int) -> list[str]:
    return sorted(a["id"] for a in sm.allocations.values()
                  if a["index"] == index and a["desired_status"] == "run"
                  and a["client_status"] in ("pending", "running"))


def test_a_second_plan_for_a_running_instance_is_dropped_and_the_rest_lands() -> None:
    sm = cluster()
    plan(sm, placement("a0", 0))
    value = plan(sm, placement("b0", 0, node="n2"), placement("b1", 1, node="n2"))
    assert value["placed"] == 1 and value["refused"] == 1 and value["duplicates"] == 1
    assert live(sm, 0) == ["a0"] and live(sm, 1) == ["b1"]
    assert "b0" not in sm.allocations


def test_two_placements_of_one_instance_in_one_plan_keep_only_the_first() -> None:
    sm = cluster()
    value = plan(sm, placement("a0", 0), placement("b0", 0, node="n2"))
    assert value["placed"] == 1 and value["duplicates"] == 1
    assert live(sm, 0) == ["a0"]


def test_a_rolling_update_places_the_instance_it_stops_in_the_same_plan() -> None:
    sm = cluster()
    plan(sm, placement("a0", 0))
    value = plan(sm, placement("b0", 0, previous_alloc="a0"), stops=("a0",))
    assert value["placed"] == 1 and value["duplicates"] == 0
    assert live(sm, 0) == ["b0"]


def test_a_migration_off_a_draining_node_runs_both_copies_until_the_new_one_is_up() -> None:
    sm = cluster()
    plan(sm, placement("a0", 0))
    assert sm.apply(command("node.drain", node_id="id-n1", draining=True))["ok"]
    value = plan(sm, placement("b0", 0, node="n2", previous_alloc="a0"))
    assert value["placed"] == 1
    assert live(sm, 0) == ["a0", "b0"]


def test_naming_one_copy_does_not_excuse_another() -> None:
    sm = cluster()
    plan(sm, placement("a0", 0), version=1)
    plan(sm, placement("x0", 0, node="n2"), version=1)  # written under the old rules
    assert live(sm, 0) == ["a0", "x0"]
    value = plan(sm, placement("b0", 0, previous_alloc="a0"))
    assert value["duplicates"] == 1 and "b0" not in sm.allocations


def test_an_ended_copy_is_replaced() -> None:
    sm = cluster(job_type="batch")
    plan(sm, placement("a0", 0))
    assert sm.apply(command("alloc.update_status", updates=[
        {"id": "a0", "client_status": "failed", "exit_code": 1}]))["ok"]
    value = plan(sm, placement("b0", 0, node="n2", previous_alloc="a0"), stops=("a0",))
    assert value["placed"] == 1 and live(sm, 0) == ["b0"]


def test_a_gang_that_loses_one_instance_to_the_guard_loses_all() -> None:
    sm = cluster(gang=True)
    plan(sm, placement("a0", 0), version=1)
    value = plan(sm, placement("b0", 0, node="n2"), placement("b1", 1, node="n2"))
    assert value["placed"] == 0 and value["refused"] == 2
    assert live(sm, 1) == []


def test_entries_written_under_version_1_replay_as_they_were_applied() -> None:
    sm = cluster()
    plan(sm, placement("a0", 0), version=1)
    value = plan(sm, placement("b0", 0, node="n2"), version=1)
    assert value["placed"] == 1 and live(sm, 0) == ["a0", "b0"]


def test_an_instance_index_that_is_not_a_whole_number_is_refused_naming_the_field() -> None:
    sm = cluster()
    for bad in ("0", -1, 1.5, None):
        result = sm.apply(command("plan.apply", job_id="web", job_version=1,
                                  check_version=CHECK_VERSION,
                                  allocations=[placement("a0", bad)]))  # type: ignore[arg-type]
        assert not result["ok"] and result["error"]["field"] == "allocations[0].index"
    assert not sm.allocations
