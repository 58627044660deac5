"""Admission pacing: per turn of the event loop at most N paced requests start, in arrival
order; heartbeats and health checks are never held back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from federation.api.admission import AdmissionGate, TurnBudget, is_liveness
from federation.server import relay
from federation.server.config import ServerConfig


def run_counting_turns(main: Callable[[list[int]], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main(turns)`` on a fresh loop whose ``turns[0]`` counts turns of the loop
    (each turn selects once)."""
    loop = asyncio.new_event_loop()
    turns = [0]
    selector = loop._selector  # type: ignore[attr-defined]
    select = selector.select

    def counting(timeout: float | None = None) -> Any:
        turns[0] += 1
        return select(timeout)

    selector.select = counting
    try:
        return loop.run_until_complete(main(turns))
    finally:
        loop.close()


def per_turn(admitted_at: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for turn in admitted_at:
        counts[turn] = counts.get(turn, 0) + 1
    return counts


def test_at_most_per_turn_requests_start_in_one_turn_in_arrival_order() -> None:
    budget = TurnBudget(per_turn=3)

    async def main(turns: list[int]) -> tuple[list[int], list[int]]:
        admitted_at: list[int] = []
        order: list[int] = []

        async def request(i: int) -> None:
            await budget.admit()
            admitted_at.append(turns[0])
            order.append(i)

        await asyncio.gather(*(request(i) for i in range(10)))
        return admitted_at, order

    admitted_at, order = run_counting_turns(main)
    assert order == list(range(10))
    assert max(per_turn(admitted_at).values()) == 3
    assert len(per_turn(admitted_at)) == 4  # 3 + 3 + 3 + 1
    assert budget.queued == 7


def test_an_idle_loop_admits_at_once() -> None:
    budget = TurnBudget(per_turn=2)

    async def main(turns: list[int]) -> list[int]:
        admitted_at = []
        for _ in range(5):  # one after another: each finds the turn's budget unused
            await budget.admit()
            admitted_at.append(turns[0])
            await asyncio.sleep(0)
        return admitted_at

    admitted_at = run_counting_turns(main)
    assert max(per_turn(admitted_at).values()) <= 2
    assert budget.queued <= 2


def test_a_request_cancelled_while_queued_takes_no_turn_and_the_next_one_goes() -> None:
    budget = TurnBudget(per_turn=1)

    async def main(turns: list[int]) -> list[str]:
        admitted: list[str] = []

        async def request(name: str) -> None:
            await budget.admit()
            admitted.append(name)

        first = asyncio.ensure_future(request("first"))
        doomed = asyncio.ensure_future(request("doomed"))
        last = asyncio.ensure_future(request("last"))
        await asyncio.sleep(0)  # all three have asked: first admitted, two queued
        doomed.cancel()
        await asyncio.wait_for(asyncio.gather(first, last), 2)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return admitted

    assert run_counting_turns(main) == ["first", "last"]


def test_readmit_paces_only_requests_the_gate_paced() -> None:
    budget = TurnBudget(per_turn=1)
    seen: dict[str, int] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        before = budget.queued
        await budget.readmit()
        seen[scope["path"]] = budget.queued - before

    gate = AdmissionGate(app, budget)

    async def main(turns: list[int]) -> None:
        for path in ("/v1/jobs", "/v1/nodes/n1/heartbeat"):
            # Saturate the turn first, so that any admission has to queue.
            await budget.admit()
            await gate({"type": "http", "method": "POST", "path": path}, None, None)

    run_counting_turns(main)
    assert seen["/v1/nodes/n1/heartbeat"] == 0  # never queued
    assert seen["/v1/jobs"] == 1  # queued again after its wait, like any paced request


def test_heartbeats_pass_a_saturated_gate_in_the_turn_they_arrive() -> None:
    budget = TurnBudget(per_turn=1)

    async def main(turns: list[int]) -> dict[str, int]:
        started: dict[str, int] = {}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            started[scope["path"]] = turns[0]

        gate = AdmissionGate(app, budget)
        requests = [("GET", f"/v1/jobs/j{i}") for i in range(4)]
        requests.insert(2, ("POST", "/v1/nodes/n1/heartbeat"))
        requests.append(("GET", "/v1/health"))
        await asyncio.gather(*(gate({"type": "http", "method": m, "path": p}, None, None)
                               for m, p in requests))
        first = min(started.values())  # the turn the requests' tasks first ran in
        return {path: turn - first for path, turn in started.items()}

    started = run_counting_turns(main)
    assert started["/v1/nodes/n1/heartbeat"] == 0
    assert started["/v1/health"] == 0
    jobs = [started[f"/v1/jobs/j{i}"] for i in range(4)]
    assert jobs[0] == 0 and jobs == sorted(set(jobs))  # one per turn, in arrival order


@pytest.mark.parametrize(("method", "path", "liveness"), [
    ("POST", "/v1/nodes/abc123/heartbeat", True),
    ("POST", relay.PATH, True),
    ("GET", "/v1/health", True),
    ("GET", "/v1/nodes/abc123/heartbeat", False),
    ("POST", "/v1/nodes/abc/123/heartbeat", False),
    ("POST", "/v1/nodes/abc123/allocations", False),
    ("POST", "/v1/jobs", False),
    ("GET", "/v1/status", False),
])
def test_what_counts_as_liveness(method: str, path: str, liveness: bool) -> None:
    assert is_liveness(method, path) is liveness


def test_the_budget_is_a_validated_server_setting() -> None:
    from federation.errors import ValidationError

    config = ServerConfig(id="a", data_dir="/nonexistent", http="127.0.0.1:1",
                          raft="127.0.0.1:2", secret="s" * 32, requests_per_turn=0)
    with pytest.raises(ValidationError) as err:
        config.validate()
    assert err.value.field == "--requests-per-turn"
    with pytest.raises(ValueError):
        TurnBudget(per_turn=0)
