"""Decide, commit, then act: the executor calls a provider only with a launch whose
``launch.begin`` is committed, so a new leader can always find and finish or reconcile it.
These fail if the guard between the commit and the call is removed."""

from __future__ import annotations

from typing import Any

import pytest

from federation.errors import NoLeader
from federation.providers.base import Bootstrap, LaunchResult
from federation.specs.pool import PoolSpec
from tests.autoscaler.test_executor import Harness, MemoryProvider


class WatchingProvider(MemoryProvider):
    """Records, at the moment of each launch call, what the state said of its token."""

    def __init__(self, harness: Harness | None = None) -> None:
        super().__init__()
        self.harness = harness
        self.seen: list[str | None] = []

    def launch(self, pool: PoolSpec, instance_type: str, count: int, token: str,
               bootstrap: Bootstrap) -> LaunchResult:
        assert self.harness is not None
        record = self.harness.machine.launches.get(token)
        self.seen.append(None if record is None else record["status"])
        return super().launch(pool, instance_type, count, token, bootstrap)


def harness_with(provider: WatchingProvider) -> Harness:
    h = Harness({"memory": provider})
    provider.harness = h
    return h


def test_the_provider_sees_its_launch_already_committed() -> None:
    provider = WatchingProvider()
    h = harness_with(provider)
    h.pool(min_nodes=1)
    h.executor.tick()
    assert provider.seen == ["pending"]


def test_a_rejected_launch_begin_calls_no_provider() -> None:
    provider = WatchingProvider()
    h = harness_with(provider)
    h.pool(min_nodes=1)

    def refuse_launches(command: dict[str, Any]) -> dict[str, Any]:
        if command["type"] == "launch.begin":
            return {"ok": False, "error": {"code": "conflict", "message": "refused"}}
        return h.commit(command)

    h.new_leader(commit=refuse_launches)
    h.executor.tick()
    assert provider.launches() == [] and provider.seen == []


def test_a_launch_begin_that_changed_nothing_calls_no_provider() -> None:
    # A re-delivered begin (the same command applied twice) is not a new launch to act on.
    provider = WatchingProvider()
    h = harness_with(provider)
    h.pool(min_nodes=1)

    def already_begun(command: dict[str, Any]) -> dict[str, Any]:
        result = h.commit(command)
        if command["type"] == "launch.begin" and result.get("ok"):
            return {**result, "value": {**result["value"], "changed": False}}
        return result

    h.new_leader(commit=already_begun)
    h.executor.tick()
    assert provider.launches() == []


def test_a_launch_whose_begin_cannot_be_committed_calls_no_provider() -> None:
    # No leader, a commit that times out: the executor stops before the provider.
    provider = WatchingProvider()
    h = harness_with(provider)
    h.pool(min_nodes=1)

    def no_leader(command: dict[str, Any]) -> dict[str, Any]:
        if command["type"] == "launch.begin":
            raise NoLeader("an election is under way")
        return h.commit(command)

    h.new_leader(commit=no_leader)
    with pytest.raises(NoLeader):
        h.executor.tick()
    assert provider.launches() == [] and h.records("launch") == []
