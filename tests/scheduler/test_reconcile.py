"""The reconciler: what a job needs, given its allocations."""

from __future__ import annotations

from federation.scheduler.reconcile import dependencies_ready, reconcile_job, settled


def job(type_: str = "service", count: int = 2, version: int = 1, **group) -> dict:
    return {"id": "j", "version": version, "stopped": False, "spec": {
        "type": type_, "groups": [{"name": "g", "count": count, **group}]}}


def alloc(index: int, status: str = "running", node: str = "n1", version: int = 1,
          **extra) -> dict:
    return {"id": f"a{index}-{node}-{status}", "group": "g", "index": index, "node_id": node,
            "desired_status": "run", "client_status": status, "job_version": version, **extra}


def test_missing_indexes_are_placed() -> None:
    work = reconcile_job(job(count=3), [alloc(1)])
    assert work.groups[0].place == [0, 2]


def test_instances_beyond_count_are_stopped() -> None:
    work = reconcile_job(job(count=1), [alloc(0), alloc(1)])
    assert work.groups[0].stop == ["a1-n1-running"]


def test_a_completed_batch_index_is_done_but_a_service_is_replaced() -> None:
    assert reconcile_job(job("batch", 1), [alloc(0, "complete")]).empty
    service = reconcile_job(job("service", 1), [alloc(0, "complete")])
    assert service.groups[0].place == [0]


def test_a_failed_batch_task_is_rescheduled_until_its_attempts_run_out() -> None:
    first = reconcile_job(job("batch", 1, reschedule={"attempts": 1}), [alloc(0, "failed")])
    assert first.groups[0].place == [0]
    assert first.groups[0].previous[0]["id"] == "a0-n1-failed"
    out = reconcile_job(job("batch", 1, reschedule={"attempts": 1}),
                        [alloc(0, "failed", reschedules=1)])
    assert out.groups[0].exhausted == [0] and not out.groups[0].place


def test_a_copy_its_agent_stopped_is_replaced_without_using_an_attempt() -> None:
    # A batch copy reported stopped while still meant to run (its agent shut down with its
    # tasks) is not a success and not a failure of the task: it runs again, attempts intact.
    work = reconcile_job(job("batch", 1, reschedule={"attempts": 0}),
                         [alloc(0, "stopped", reschedules=0)])
    assert work.groups[0].place == [0] and not work.groups[0].exhausted
    assert work.groups[0].stop == ["a0-n1-stopped"]


def test_a_service_on_a_draining_node_gets_a_replacement_before_it_stops() -> None:
    draining = frozenset({"old"})
    start = reconcile_job(job(count=1), [alloc(0, node="old")], draining)
    assert start.groups[0].place == [0] and not start.groups[0].stop
    pending = reconcile_job(job(count=1), [alloc(0, node="old"), alloc(0, "pending", "new")],
                            draining)
    assert pending.empty
    running = reconcile_job(job(count=1), [alloc(0, node="old"), alloc(0, node="new")],
                            draining)
    assert running.groups[0].stop == ["a0-old-running"] and not running.groups[0].place


def test_two_copies_leaving_draining_nodes_get_one_replacement_naming_one_of_them() -> None:
    work = reconcile_job(job(count=1), [alloc(0, node="old"), alloc(0, node="older")],
                         frozenset({"old", "older"}))
    group = work.groups[0]
    assert group.place == [0] and group.previous[0]["id"] == "a0-old-running"
    assert group.stop == ["a0-older-running"]


def test_a_new_version_replaces_old_instances_max_parallel_at_a_time() -> None:
    spec = job(count=3, version=2)
    spec["spec"]["update"] = {"max_parallel": 2}
    work = reconcile_job(spec, [alloc(i) for i in range(3)])
    assert len(work.groups[0].place) == 2 and len(work.groups[0].stop) == 2


def test_dependencies_must_be_complete() -> None:
    child = {"spec": {"depends_on": ["a", "b"]}}
    assert dependencies_ready(child, {"a": "complete", "b": "complete"}) is None
    assert "'b'" in dependencies_ready(child, {"a": "complete", "b": "running"})


def test_batch_work_on_a_draining_node_finishes_unless_the_deadline_passed() -> None:
    batch = job("batch", 1)
    assert reconcile_job(batch, [alloc(0, node="old")], frozenset({"old"})).empty
    expired = reconcile_job(batch, [alloc(0, node="old")], frozenset({"old"}),
                            frozenset({"old"}))
    assert expired.groups[0].stop == ["a0-old-running"]
    assert expired.groups[0].place == [0]
    assert expired.groups[0].previous[0]["client_status"] == "lost"  # no attempt used


def test_a_rolling_update_waits_for_new_instances_to_be_up() -> None:
    spec = job(count=3, version=2)
    spec["spec"]["update"] = {"max_parallel": 1}
    one_new_pending = [alloc(0, "pending", version=2), alloc(1), alloc(2)]
    assert reconcile_job(spec, one_new_pending).empty
    one_new_running = [alloc(0, "running", version=2), alloc(1), alloc(2)]
    work = reconcile_job(spec, one_new_running)
    assert work.groups[0].place == [1] and work.groups[0].stop == ["a1-n1-running"]


def test_a_job_is_settled_only_when_no_copy_waits_for_another_to_come_up() -> None:
    def is_settled(spec: dict, allocs: list[dict], draining: frozenset[str] = frozenset()):
        return settled(spec, reconcile_job(spec, allocs, draining), allocs, draining)

    assert is_settled(job(count=2), [alloc(0, "pending"), alloc(1)])
    assert not is_settled(job(count=2), [alloc(0)])  # an index to place
    # A rolling update waiting for the new copy to run: its coming up is a decision.
    assert not is_settled(job(count=1, version=2),
                          [alloc(0, version=1), alloc(0, "pending", node="n2", version=2)])
    # A migration waiting for the replacement off a draining node, likewise.
    assert not is_settled(job(count=1), [alloc(0, node="old"), alloc(0, "pending", "new")],
                          frozenset({"old"}))
    assert not is_settled({**job(count=1), "unplaced": {"g": {"count": 1}}}, [alloc(0)])
