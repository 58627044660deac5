"""Watch keys: what a blocking query on one key is woken by, specified on the state machine."""

from __future__ import annotations

import pickle

from federation.state.machine import WATCH_ALL, StateMachine
from tests.state.test_machine import Log, node, place, spec


def alloc(alloc_id: str, node_id: str, job_id: str = "etl", index: int = 0) -> dict:
    return {"id": alloc_id, "job_id": job_id, "group": "w", "index": index,
            "node_id": node_id, "resources": {"cpu_milli": 100, "memory_mib": 64}}


def two_nodes() -> Log:
    log = Log()
    log("node.register", node=node("a", "id-a"))
    log("node.register", node=node("b", "id-b"))
    log("job.register", spec=spec())
    log.sm.take_touched()
    return log


def test_a_change_on_node_b_leaves_node_a_s_work_list_index_alone() -> None:
    log = two_nodes()
    place(log, alloc("x1", "id-a"))
    a_index = log.sm.watch_index_of("node-allocs:id-a")
    log.sm.take_touched()
    place(log, alloc("y1", "id-b", index=1))
    touched = log.sm.take_touched()
    assert "node-allocs:id-b" in touched and "node-allocs:id-a" not in touched
    assert log.sm.watch_index_of("node-allocs:id-a") == a_index
    assert log.sm.watch_index_of("node-allocs:id-b") == log.sm.index


def test_an_allocation_status_report_moves_its_node_and_job_keys() -> None:
    log = two_nodes()
    place(log, alloc("x1", "id-a"))
    log.sm.take_touched()
    log("alloc.update_status", node_id="id-a",
        updates=[{"id": "x1", "client_status": "running"}])
    assert log.sm.take_touched() == {"allocations", "node-allocs:id-a", "job-allocs:etl"}


def test_a_rejected_command_touches_nothing() -> None:
    log = two_nodes()
    before = dict(log.sm.watch_index)
    # The same allocation id twice in one plan: the command is refused whole.
    rejected = log("plan.apply", job_id="etl", job_version=1,
                   allocations=[alloc("x1", "id-a"), alloc("x1", "id-a", index=1)])
    assert rejected["ok"] is False
    assert log.sm.take_touched() == set()
    assert log.sm.watch_index == before
    assert log.sm.alloc_ids_by_node == {}


def test_a_node_and_a_job_have_their_own_keys() -> None:
    log = two_nodes()
    log("node.drain", node_id="id-a", draining=True)
    assert log.sm.take_touched() == {"nodes", "node:id-a"}
    log("job.deregister", job_id="etl")
    assert {"jobs", "job:etl"} <= log.sm.take_touched()


def test_the_per_node_index_follows_placements_moves_and_collection() -> None:
    log = two_nodes()
    place(log, alloc("x1", "id-a"), alloc("x2", "id-a", index=1))
    assert log.sm.alloc_ids_by_node == {"id-a": {"x1", "x2"}}
    result = log("node.mark_down", node_id="id-a", last_heartbeat_seen=10**9)
    assert result["value"]["lost"] == 2
    assert log.sm.alloc_ids_by_node == {"id-a": {"x1", "x2"}}
    for alloc_id in ("x1", "x2"):
        log.sm.remove_allocation(alloc_id)
    assert log.sm.alloc_ids_by_node == {}


def test_a_machine_read_back_from_a_snapshot_answers_every_watch_once() -> None:
    log = two_nodes()
    place(log, alloc("x1", "id-a"))
    copy = pickle.loads(pickle.dumps(log.sm))
    assert copy.alloc_ids_by_node == {"id-a": {"x1"}}
    # Its record of changes starts at the snapshot: every key reads as changed there.
    assert copy.watch_index_of("node-allocs:id-b") == copy.index
    assert WATCH_ALL in copy.take_touched()
    restored = StateMachine.from_snapshot(log.sm.snapshot())
    assert restored.alloc_ids_by_node == {"id-a": {"x1"}}


def test_the_record_of_watch_keys_starts_again_when_it_outgrows_the_state(
        monkeypatch) -> None:
    import federation.state.machine as machine_module

    log = two_nodes()
    log("alloc.upsert", allocations=[alloc("x1", "id-a")])
    before = log.sm.watch_index_of("node-allocs:id-a")
    # Keys of records long gone (collected jobs) pile up; past the bound the record restarts.
    monkeypatch.setattr(machine_module, "WATCH_KEYS_SLACK", -1000)
    log.sm.take_touched()
    log("node.drain", node_id="id-b", draining=True)
    assert log.sm.watch_index == {} and log.sm.watch_floor == log.sm.index
    assert WATCH_ALL in log.sm.take_touched()
    # Whatever was dropped reads as changed at the floor, never as unchanged.
    assert log.sm.watch_index_of("node-allocs:id-a") == log.sm.index > before
