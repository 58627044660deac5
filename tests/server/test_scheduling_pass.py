"""A scheduling pass cut short by the loss of leadership, over a bare state machine."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from typing import Any

from federation.errors import NoLeader
from federation.server.scheduling import Scheduler
from federation.state.machine import StateMachine
from tests.scheduler.test_service import StateContext


class LosesLeadership:
    """A leader context whose leadership is lost right after its first plan is submitted."""

    def __init__(self, sm: StateMachine, stop: threading.Event) -> None:
        self.machine, self.changed, self.stop = sm, threading.Condition(), stop
        self.ids = itertools.count()
        self.submitted: list[str] = []

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        return self.machine.apply({"id": f"ctx-{next(self.ids)}", "time": 10.0, **command})

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        self.submitted.append(command["job_id"])
        future: Future[dict[str, Any]] = Future()
        future.set_result(self.commit_sync(command))
        self.stop.set()
        return future

    def now(self) -> float:
        return 10.0


def live(sm: StateMachine, job_id: str) -> int:
    return sum(1 for a in sm.allocations.values()
               if a["job_id"] == job_id and a["desired_status"] == "run")


def test_a_pass_cut_short_submits_nothing_more_and_leaves_the_rest_to_the_next() -> None:
    sm = StateMachine()
    sm.apply({"id": "n", "type": "node.register", "time": 1.0, "node": {
        "id": "n1", "name": "n1", "token_hash": "h",
        "capacity": {"cpu_milli": 8000, "memory_mib": 8192, "gpu": 0}}})
    for job_id in ("a", "b", "c"):
        sm.apply({"id": f"j-{job_id}", "type": "job.register", "time": 2.0, "spec": {
            "id": job_id, "type": "batch", "groups": [{
                "name": "g", "count": 2, "resources": {"cpu": 100, "memory": 64},
                "task": {"command": ["true"]}}]}})
    first_term = threading.Event()
    context = LosesLeadership(sm, first_term)
    scheduler = Scheduler(context)
    assert scheduler.schedule_pass(first_term) == 2
    assert len(context.submitted) == 1  # nothing after leadership was lost
    # Leading again later: the jobs the cut pass never planned are planned now, and the
    # one it did is not planned a second time.
    context.stop = threading.Event()
    while scheduler.schedule_pass(context.stop):
        context.stop = threading.Event()
    assert {job_id: live(sm, job_id) for job_id in ("a", "b", "c")} == {"a": 2, "b": 2, "c": 2}


class Leading(StateContext):
    """A leader context over a bare state machine; ``fail_next`` submissions fail as a lost
    quorum would."""

    def __init__(self, sm: StateMachine) -> None:
        super().__init__(sm, now=10.0)
        self.fail_next = 0

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        if not self.fail_next:
            return super().submit(command)
        self.fail_next -= 1
        future: Future[dict[str, Any]] = Future()
        future.set_exception(NoLeader("no leader"))
        return future


def test_a_pass_looks_only_at_jobs_whose_allocations_or_nodes_changed() -> None:
    sm = StateMachine()
    for node in ("n1", "n2"):
        sm.apply({"id": node, "type": "node.register", "time": 1.0, "node": {
            "id": node, "name": node, "token_hash": "h",
            "capacity": {"cpu_milli": 8000, "memory_mib": 8192, "gpu": 0}}})
    for job_id in ("a", "b"):
        sm.apply({"id": f"j-{job_id}", "type": "job.register", "time": 2.0, "spec": {
            "id": job_id, "type": "service", "groups": [{
                "name": "g", "count": 2, "resources": {"cpu": 100, "memory": 64},
                "constraints": [{"attribute": "node.id", "operator": "=",
                                 "value": "n1" if job_id == "a" else "n2"}],
                "task": {"command": ["sleep", "60"]}}]}})
    context = Leading(sm)
    scheduler = Scheduler(context)
    assert scheduler.schedule_pass() == 4
    scheduler.schedule_pass()  # the pass after the plans: both found settled
    looked = scheduler.considered
    assert scheduler.schedule_pass() == 0 and scheduler.considered == looked

    def fail_one(job_id: str) -> None:
        alloc = next(a for a in sm.allocations.values() if a["job_id"] == job_id
                     and a["client_status"] == "pending")
        assert context.commit_sync({"type": "alloc.update_status", "updates": [
            {"id": alloc["id"], "client_status": "failed", "exit_code": 1}]})["ok"]
        context._now += 3600  # past any reschedule delay

    fail_one("a")
    assert scheduler.schedule_pass() == 1  # its replacement
    assert scheduler.considered == looked + 1  # job a, not b

    # A pass that fails to commit leaves its changes to the next one.
    fail_one("b")
    context.fail_next = 1
    try:
        scheduler.schedule_pass()
    except NoLeader:
        pass
    assert scheduler.schedule_pass() == 1

    # A node that changes (here: drains; no allocation is written) wakes the jobs on it.
    scheduler.schedule_pass()
    looked = scheduler.considered
    assert context.commit_sync({"type": "node.drain", "node_id": "n2", "draining": True})["ok"]
    scheduler.schedule_pass()
    assert scheduler.considered == looked + 1
