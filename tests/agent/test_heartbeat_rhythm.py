"""An agent beats at the rhythm the servers tell it (a large cluster is told a longer TTL),
unless it was given a TTL of its own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from federation.agent.agent import Agent


def agent(own_ttl: float | None = None, ttl: float = 10.0) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(heartbeat_ttl=own_ttl), ttl=ttl)


def test_an_agent_follows_the_ttl_a_heartbeat_answer_tells_it() -> None:
    a = agent()
    Agent._follow_ttl(a, {"status": "ready", "heartbeat_ttl": 60.0})  # type: ignore[arg-type]
    assert a.ttl == 60.0
    Agent._follow_ttl(a, {"status": "ready", "heartbeat_ttl": 10})  # type: ignore[arg-type]
    assert a.ttl == 10.0


def test_an_agent_given_its_own_ttl_keeps_it() -> None:
    a = agent(own_ttl=3.0, ttl=3.0)
    Agent._follow_ttl(a, {"heartbeat_ttl": 60.0})  # type: ignore[arg-type]
    assert a.ttl == 3.0


@pytest.mark.parametrize("told", [None, 0, -5, True, "60", 1e9, float("nan")])
def test_an_answer_without_a_usable_ttl_changes_nothing(told: object) -> None:
    a = agent()
    Agent._follow_ttl(a, {"heartbeat_ttl": told})  # type: ignore[arg-type]
    Agent._follow_ttl(a, None)  # type: ignore[arg-type]
    assert a.ttl == 10.0
