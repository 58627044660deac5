"""Reschedule backoff: a failed copy is replaced after a delay that doubles per failure in a
row, up to a cap; the job says ``degraded`` meanwhile."""

from __future__ import annotations

import pytest

from federation.model.jobstatus import live_status
from federation.scheduler.backoff import next_streak, replace_at, replacement_delay
from federation.scheduler.reconcile import reconcile_job

GROUP = {"name": "g", "count": 1, "reschedule": {"delay": "5s", "max_delay": "5m"}}


def failed(streak: int = 0, ended: float = 1000.0, ran: float = 1.0, **extra) -> dict:
    return {"id": f"f{streak}", "group": "g", "index": 0, "node_id": "n1",
            "desired_status": "run", "client_status": "failed", "failure_streak": streak,
            "ended_time": ended, "started_at": 50.0, "finished_at": 50.0 + ran,
            "job_version": 1, **extra}


@pytest.mark.parametrize(("streak", "delay"), [
    (0, 5.0), (1, 10.0), (2, 20.0), (5, 160.0), (6, 300.0), (40, 300.0), (10**9, 300.0)])
def test_the_delay_doubles_per_failure_in_a_row_up_to_the_cap(streak, delay) -> None:
    assert replacement_delay(GROUP, failed(streak)) == delay


def test_a_copy_that_ran_as_long_as_the_cap_starts_the_streak_again() -> None:
    stable = failed(streak=6, ran=300.0)
    assert replacement_delay(GROUP, stable) == 5.0
    assert next_streak(GROUP, stable) == 1
    assert next_streak(GROUP, failed(streak=3)) == 4


def test_lost_or_stopped_copies_are_replaced_at_once_and_keep_their_streak() -> None:
    for status in ("lost", "stopped"):
        copy = failed(streak=3, client_status=status)
        assert replace_at(GROUP, copy) is None
        assert next_streak(GROUP, copy) == 3


def test_defaults_apply_to_specs_from_before_the_delay_existed() -> None:
    assert replacement_delay({"name": "g"}, failed(0)) == 5.0
    assert replacement_delay({"name": "g"}, failed(20)) == 300.0


def test_the_reconciler_holds_a_failed_copy_until_its_delay_passed() -> None:
    job = {"id": "j", "version": 1, "stopped": False,
           "spec": {"type": "service", "groups": [GROUP]}}
    copy = failed(streak=1, ended=1000.0)  # due at 1010
    early = reconcile_job(job, [copy], now=1009.0)
    assert early.empty and early.groups[0].delayed == {0: 1010.0}
    assert early.wake_at == 1010.0
    due = reconcile_job(job, [copy], now=1010.5)
    assert due.groups[0].place == [0] and due.groups[0].stop == [copy["id"]]
    assert reconcile_job(job, [copy]).groups[0].place == [0]  # no clock: no delay


SERVICE = [{"name": "web", "count": 2, "task": {"health": {"type": "tcp"}}}]


def copy(status: str = "running", **extra) -> dict:
    return {"group": "web", "desired_status": "run", "client_status": status, **extra}


@pytest.mark.parametrize(("allocs", "status"), [
    ([copy(healthy=True), copy(healthy=True)], "running"),
    ([copy(), copy()], "running"),  # in the grace period
    ([copy("pending"), copy("pending")], "pending"),
    ([copy(healthy=True), copy("pending")], "running"),  # coming up for the first time
    ([copy(healthy=True)], "degraded"),  # short of count
    ([copy(healthy=True), copy(healthy=False)], "degraded"),  # failing its check
    ([copy(healthy=True), copy("failed")], "degraded"),  # waiting for its replacement
    ([copy("pending", restarts=1), copy("pending")], "degraded"),  # restarted in place
    ([copy(healthy=True), copy(failure_streak=2)], "degraded"),  # replacement on trial
    ([copy(healthy=True), copy(failure_streak=2, healthy=True)], "running"),
    ([copy(healthy=True), copy(healthy=True), copy("failed", desired_status="stop")],
     "running"),  # a replaced copy does not count
])
def test_a_live_job_is_running_degraded_or_pending(allocs, status) -> None:
    assert live_status(SERVICE, allocs, batch=False) == status
