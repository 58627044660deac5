"""Garbage collection of finished work, specified on the state machine (no Raft)."""

from __future__ import annotations

from federation.state.gc import Policy
from federation.state.machine import StateMachine
from tests.state.test_totality import assert_invariants, digest


class Log:
    def __init__(self) -> None:
        self.sm = StateMachine()
        self.n = 0

    def __call__(self, type_: str, time: float = 100.0, **fields) -> dict:
        self.n += 1
        result = self.sm.apply({"id": f"c{self.n}", "type": type_, "time": time, **fields})
        return result

    def gc(self, now: float, **policy) -> dict:
        return self(**{"type_": "gc", **Policy(**policy).command(now)})


def spec(job_id: str, **extra) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{"name": "g", "count": 1}], **extra}


def setup() -> Log:
    log = Log()
    log("node.register", node={"id": "n1", "name": "n1", "token_hash": "h",
                               "capacity": {"cpu_milli": 100_000, "memory_mib": 100_000}})
    return log


def run(log: Log, job_id: str, status: str, when: float = 100.0, **register) -> None:
    """Register a job and give it one allocation that reached ``status``."""
    assert log("job.register", time=when, spec=spec(job_id), **register)["ok"]
    version = log.sm.jobs[job_id]["version"]
    assert log("plan.apply", time=when, job_id=job_id, job_version=version, allocations=[{
        "id": f"{job_id}-a", "job_id": job_id, "group": "g", "node_id": "n1",
        "resources": {"cpu_milli": 10, "memory_mib": 10}}])["ok"]
    assert log("alloc.update_status", time=when, updates=[{
        "id": f"{job_id}-a", "client_status": status, "finished_at": when}])["ok"]


def test_a_periodic_job_keeps_its_most_recent_finished_children() -> None:
    log = setup()
    assert log("job.register", spec=spec("tick", schedule="* * * * * *"))["ok"]
    for second in range(10):
        run(log, f"tick-{second}", "complete", when=100.0 + second, parent="tick",
            launch_time=100.0 + second)
    run(log, "tick-10", "running", when=110.0, parent="tick", launch_time=110.0)
    result = log.gc(111.0, periodic_keep=3)
    assert result["value"] == {"jobs": 7, "allocations": 7}
    children = sorted(j for j in log.sm.jobs if j.startswith("tick-"))
    assert children == ["tick-10", "tick-7", "tick-8", "tick-9"]  # the running one stays
    assert "tick" in log.sm.jobs
    assert sorted(log.sm.allocations) == [f"{c}-a" for c in children]
    assert_invariants(log.sm)


def test_a_finished_job_goes_after_the_age_and_an_unfinished_one_never() -> None:
    log = setup()
    run(log, "old", "complete", when=100.0)
    run(log, "young", "failed", when=900.0)
    run(log, "busy", "running", when=0.0)
    assert log("job.register", spec={**spec("stopped"), "type": "service"})["ok"]
    assert log("job.deregister", time=200.0, job_id="stopped")["ok"]
    log.gc(1000.0, job_age=500.0)
    assert sorted(log.sm.jobs) == ["busy", "young"]
    assert "old-a" not in log.sm.allocations
    assert_invariants(log.sm)


def test_a_dependency_of_an_unfinished_job_is_kept() -> None:
    log = setup()
    run(log, "extract", "complete", when=0.0)
    assert log("job.register", spec=spec("load", depends_on=["extract"]))["ok"]
    log.gc(10_000.0, job_age=60.0)
    assert "extract" in log.sm.jobs


def test_a_job_keeps_a_bounded_history_of_ended_allocations() -> None:
    log = setup()
    assert log("job.register", spec={**spec("web"), "type": "service"})["ok"]
    for i in range(6):
        assert log("plan.apply", job_id="web", job_version=1, allocations=[{
            "id": f"a{i}", "job_id": "web", "group": "g", "node_id": "n1",
            "resources": {"cpu_milli": 10}}], stops=[f"a{i - 1}"] if i else [])["ok"]
        if i:
            assert log("alloc.update_status", updates=[
                {"id": f"a{i - 1}", "client_status": "complete"}])["ok"]
    log.gc(200.0, allocs_per_job=2)
    assert sorted(log.sm.allocations) == ["a3", "a4", "a5"]  # 2 ended + the live one
    assert_invariants(log.sm)


def test_nothing_to_collect_changes_nothing() -> None:
    log = setup()
    run(log, "busy", "running")
    before = digest(log.sm)
    assert log.gc(10**9)["value"] == {"jobs": 0, "allocations": 0}
    assert digest(log.sm) == before


def test_collection_is_the_same_on_every_server() -> None:
    logs = [setup(), setup()]
    for log in logs:
        assert log("job.register", spec=spec("tick", schedule="* * * * * *"))["ok"]
        for second in range(5):
            run(log, f"tick-{second}", "complete", when=float(second), parent="tick",
                launch_time=float(second))
        log.gc(10.0, periodic_keep=1)
    assert digest(logs[0].sm) == digest(logs[1].sm)


def test_planning_reads_one_copy_of_the_jobs_while_they_change() -> None:
    # The leader's gc loop plans on a state Raft keeps changing: a job added while the plan
    # is read must not make it fail.
    from federation.state import gc as gc_module

    class Growing(dict):
        """A job table that gains a job each time it is iterated."""

        def items(self):  # type: ignore[override]
            job = {"id": f"late-{len(self)}", "spec": {"type": "batch", "groups": []},
                   "version": 1, "stopped": False}
            dict.__setitem__(self, job["id"], job)
            return dict(self).items()

    machine = StateMachine()
    machine.jobs = Growing()
    assert gc_module.plan(machine, 0.0, gc_module.Policy()) == ([], [])
