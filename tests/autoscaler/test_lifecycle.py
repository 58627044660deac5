"""The instance lifecycle: the table of allowed transitions, and the provider called only in
the states the table reserves for calls."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from opentelemetry import trace

from federation.autoscaler.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
    Status,
    Tracked,
    advance,
    instance_status,
)
from federation.autoscaler.planner import ScaleUp
from federation.providers.base import Bootstrap
from federation.specs.pool import parse_pool
from tests.autoscaler.test_executor import MemoryProvider

ALLOWED = {
    (Status.REQUESTED, Status.LAUNCHING),
    (Status.LAUNCHING, Status.RUNNING),
    (Status.LAUNCHING, Status.FAILED),
    (Status.LAUNCHING, Status.LAUNCHING),
    (Status.RUNNING, Status.DRAINING),
    (Status.RUNNING, Status.TERMINATING),
    (Status.DRAINING, Status.RUNNING),
    (Status.DRAINING, Status.TERMINATING),
    (Status.TERMINATING, Status.TERMINATED),
    (Status.TERMINATING, Status.RUNNING),
    (Status.TERMINATING, Status.TERMINATING),
}


def test_the_table_allows_exactly_the_reviewed_edges() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("current", "new"), sorted(
    set(itertools.product(Status, Status)) - ALLOWED))
def test_every_other_transition_is_refused(current: Status, new: Status) -> None:
    with pytest.raises(IllegalTransition):
        advance(current, new, "i-1")


@pytest.mark.parametrize(("record", "status"), [
    ({"status": "pending", "instances": {}}, Status.LAUNCHING),
    ({"status": "done", "instances": {"i-1": "running"}}, Status.RUNNING),
    ({"status": "done", "instances": {"i-1": "terminating"}}, Status.TERMINATING),
    ({"status": "done", "instances": {"i-1": "terminated"}}, Status.TERMINATED),
    ({"status": "failed", "instances": {}}, Status.FAILED),
])
def test_committed_records_name_a_lifecycle_state(record: dict, status: Status) -> None:
    assert instance_status(record, "i-1") is status


def lifecycle(provider: MemoryProvider, log: list[dict[str, Any]]) -> Lifecycle:
    def commit(command: dict[str, Any]) -> dict[str, Any]:
        log.append(command)
        return {"changed": True}

    return Lifecycle(commit, lambda name: provider,
                     lambda spec: Bootstrap(servers=("http://127.0.0.1:1",), join_token="j",
                                            cluster="c"),
                     trace.get_tracer("test"), lambda pool, kind: None)


POOL = parse_pool({"name": "cloud", "provider": "memory", "max_nodes": 10})
REQUEST = ScaleUp(pool="cloud", provider="memory", instance_type="small", count=1,
                        spot=False, zones=(), price_per_hour=0.1, hourly_cost=0.1,
                        reason="test")


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.LAUNCHING])
def test_the_provider_is_asked_to_launch_only_for_a_launching_request(status: Status) -> None:
    provider, log = MemoryProvider(), []
    with pytest.raises(IllegalTransition):
        lifecycle(provider, log).launch(Tracked("t", status), POOL, "small", 1)
    assert provider.launches() == [] and log == []


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.TERMINATING])
def test_the_provider_is_asked_to_terminate_only_for_a_terminating_request(
        status: Status) -> None:
    provider, log = MemoryProvider(), []
    with pytest.raises(IllegalTransition):
        lifecycle(provider, log).terminate(Tracked("t", status), POOL, ["i-1"])
    assert provider.terminations() == [] and log == []


def test_a_launch_walks_requested_launching_running() -> None:
    provider, log = MemoryProvider(), []
    steps = lifecycle(provider, log)
    tracked = steps.begin_launch("tok", REQUEST, "trace")
    assert tracked is not None and tracked.status is Status.LAUNCHING
    steps.launch(tracked, POOL, "small", 1)
    assert tracked.history == [Status.LAUNCHING, Status.RUNNING]
    assert [c["type"] for c in log] == ["launch.begin", "launch.end"]
