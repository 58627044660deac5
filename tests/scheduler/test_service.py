"""The plan preview decides as the leader's pass does: dependencies, queue quotas and the
workload profile, against the current state, committing nothing."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from typing import Any

from federation.scheduler.service import preview
from federation.server.scheduling import Scheduler
from federation.specs.job import validate_job
from federation.state.machine import StateMachine


def machine() -> StateMachine:
    sm = StateMachine()
    sm.apply({"id": "n", "type": "node.register", "time": 1.0, "node": {
        "id": "n1", "name": "n1", "token_hash": "h",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    return sm


def job(job_id: str, **spec: Any) -> dict[str, Any]:
    body = validate_job({"id": job_id, "type": "batch", **spec, "groups": [{
        "name": "g", "count": 2, "resources": {"cpu": 500, "memory": 256},
        "task": {"command": ["true"]}}]})
    return {"id": job_id, "spec": body, "version": 1, "stopped": False, "create_index": 99}


def test_a_job_that_fits_is_planned_and_nothing_is_committed() -> None:
    sm = machine()
    index = sm.index
    outcome = preview(sm, job("fits"), now=10.0)
    assert outcome.blocked is None and outcome.plan is not None
    assert [a["node_id"] for a in outcome.plan.allocations] == ["n1", "n1"]
    assert sm.index == index and not sm.allocations


def test_a_job_waiting_for_a_dependency_is_not_planned() -> None:
    sm = machine()
    sm.apply({"id": "p", "type": "job.register", "time": 1.0, "spec": job("extract")["spec"]})
    outcome = preview(sm, job("load", depends_on=["extract"]), now=10.0)
    assert outcome.plan is None
    assert "waiting for dependency 'extract'" in str(outcome.blocked)


def test_a_job_past_its_queues_quota_is_held() -> None:
    sm = machine()
    sm.apply({"id": "q", "type": "queue.apply", "time": 1.0, "spec": {
        "name": "small", "weight": 1.0, "quota": {"cpu": 600, "memory": 4096}}})
    outcome = preview(sm, job("big", queue="small"), now=10.0)
    assert outcome.plan is None
    assert "more than queue small's whole quota" in str(outcome.blocked)


class StateContext:
    """A leader context over a bare state machine: commits apply at once."""

    def __init__(self, sm: StateMachine, now: float) -> None:
        self.machine, self._now, self.changed = sm, now, threading.Condition()
        self.ids = itertools.count()

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        return self.machine.apply({"id": f"ctx-{next(self.ids)}", "time": self._now,
                                   **command})

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        future.set_result(self.commit_sync(command))
        return future

    def now(self) -> float:
        return self._now


def test_the_preview_places_exactly_what_the_leaders_next_pass_commits() -> None:
    sm = StateMachine()
    for i in range(60):  # enough nodes that candidates are sampled, of several sizes
        sm.apply({"id": f"n{i}", "type": "node.register", "time": 1.0, "node": {
            "id": f"n{i}", "name": f"n{i}", "token_hash": "h", "zone": f"z{i % 3}",
            "capacity": {"cpu_milli": 1000 * (1 + i % 4), "memory_mib": 8192, "gpu": 0}}})
    # A drain past its deadline counts in both (its node takes nothing).
    sm.apply({"id": "d", "type": "node.drain", "time": 1.0, "node_id": "n5", "deadline": 5.0})
    spec = validate_job({"id": "web", "type": "service", "groups": [{
        "name": "g", "count": 40, "resources": {"cpu": 300, "memory": 128},
        "spread": "zone", "task": {"command": ["true"]}}]})
    record = {"id": "web", "spec": spec, "version": 1, "stopped": False, "create_index": 99}
    scheduler = Scheduler(StateContext(sm, now=10.0))
    shown = preview(sm, record, now=10.0, seed=scheduler.passes + 1)
    sm.apply({"id": "r", "type": "job.register", "time": 9.0, "spec": spec})
    assert scheduler.schedule_pass() == 40
    committed = sorted((a["group"], a["index"], a["node_id"]) for a in sm.allocations.values())
    assert shown.plan is not None
    assert sorted((a["group"], a["index"], a["node_id"])
                  for a in shown.plan.allocations) == committed
    assert "n5" not in {node for _, _, node in committed}
