"""A scheduling pass cut short by the loss of leadership, over a bare state machine."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from typing import Any

from federation.server.scheduling import Scheduler
from federation.state.machine import StateMachine


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
