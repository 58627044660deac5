"""Leader loops start only once the new leader has caught up with the log."""

from __future__ import annotations

import threading

from federation.server.leader import LeaderLoops
from tests.harness import wait_for


def recording_loop(started: list[str], name: str):
    def loop(stop: threading.Event) -> None:
        started.append(name)
        stop.wait()
    return loop


def test_loops_wait_until_the_new_leader_has_applied_the_log() -> None:
    started: list[str] = []
    caught_up = threading.Event()
    attempts: list[int] = []

    def catch_up(stop: threading.Event) -> bool:
        attempts.append(1)
        return caught_up.is_set()  # False: the no-op of this term is not applied yet

    loops = LeaderLoops(catch_up=catch_up)
    loops.add("scheduler", recording_loop(started, "scheduler"))
    loops.on_leadership(True)
    try:
        wait_for(lambda: len(attempts) >= 3, 5, "catch-up tried again")
        assert started == []
        caught_up.set()
        wait_for(lambda: started == ["scheduler"], 5, "the loop started")
    finally:
        loops.on_leadership(False)


def test_a_leader_that_steps_down_before_catching_up_starts_nothing() -> None:
    started: list[str] = []
    loops = LeaderLoops(catch_up=lambda stop: False)
    loops.add("scheduler", recording_loop(started, "scheduler"))
    loops.on_leadership(True)
    loops.on_leadership(False)
    threading.Event().wait(0.3)
    assert started == []
    # Leading again later, caught up at once this time.
    again = LeaderLoops(catch_up=lambda stop: True)
    again.add("scheduler", recording_loop(started, "scheduler"))
    again.on_leadership(True)
    try:
        wait_for(lambda: started == ["scheduler"], 5, "the loop started")
    finally:
        again.on_leadership(False)
