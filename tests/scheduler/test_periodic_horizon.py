"""Cron schedules fire within a bounded horizon, and one bad schedule stops no other launch."""

from __future__ import annotations

import time

import pytest

from federation.errors import ValidationError
from federation.scheduler.periodic import check_schedule, due_launches_checked, next_fire
from federation.specs.job import validate_job

NOW = 1_700_000_000.5  # 2023-11-14 22:13:20.5 UTC


def periodic(job_id: str, schedule: str, submitted: float) -> dict:
    return {"id": job_id, "stopped": False, "submit_time": submitted, "parent": None,
            "spec": {"id": job_id, "type": "batch", "schedule": schedule, "groups": []}}


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_schedule_that_never_fires_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError, match="does not fire within 5 years"):
        check_schedule(schedule, NOW)


@pytest.mark.parametrize("schedule", ["0 0 29 2 *", "* * * * * *", "@yearly", "0 2 * * 1"])
def test_rare_and_frequent_schedules_are_accepted(schedule: str) -> None:
    check_schedule(schedule, NOW)
    assert NOW < next_fire(schedule, NOW) < NOW + 5 * 366 * 86400


def test_the_job_spec_refuses_a_never_firing_schedule_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_job({"id": "x", "type": "batch", "schedule": "0 0 31 2 *", "groups": [{
            "name": "g", "resources": {"cpu": 1, "memory": 1},
            "task": {"command": ["true"]}}]})
    assert caught.value.field == "schedule"


def test_a_stored_bad_schedule_is_reported_and_the_others_still_launch() -> None:
    jobs = {"bad": periodic("bad", "0 0 31 2 *", NOW - 3600),
            "good": periodic("good", "*/5 * * * *", NOW - 3600)}
    launches, failed = due_launches_checked(jobs, lambda _: "complete", NOW)
    assert [parent["id"] for parent, _, _ in launches] == ["good"]
    assert list(failed) == ["bad"] and "does not fire" in failed["bad"]


def test_only_the_latest_missed_tick_is_launched_without_walking_every_tick() -> None:
    jobs = {"tick": periodic("tick", "* * * * * *", NOW - 30 * 86400),
            "hourly": periodic("hourly", "0 * * * *", NOW - 5 * 3600)}
    started = time.perf_counter()
    launches, _ = due_launches_checked(jobs, lambda _: "complete", NOW)
    assert time.perf_counter() - started < 1.0  # 2.6 million missed seconds, not walked
    fires = {parent["id"]: fire for parent, fire, _ in launches}
    assert fires == {"tick": NOW - 0.5, "hourly": NOW - NOW % 3600}
