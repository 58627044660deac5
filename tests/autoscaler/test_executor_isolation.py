"""The autoscaler fails per pool: a pool whose provider raises something unforeseen is set
aside with a note in the activity log, and the other pools are still served."""

from __future__ import annotations

from typing import Any

from tests.autoscaler.test_executor import Harness, MemoryProvider


class BrokenProvider(MemoryProvider):
    def catalog(self, pool: Any):  # type: ignore[override]
        raise RuntimeError("the catalog endpoint answered garbage")


def test_a_pool_whose_provider_raises_is_set_aside_and_the_others_still_scale() -> None:
    good, broken = MemoryProvider("good"), BrokenProvider("broken")
    h = Harness({"good": good, "broken": broken})
    h.pool(name="bad", provider="broken", min_nodes=1, preference=1)
    h.pool(name="fine", provider="good", min_nodes=1, preference=2)
    h.executor.tick()
    assert [r["pool"] for r in h.records("launch")] == ["fine"]
    assert len(good.launches()) == 1
    (note,) = [r for r in h.records("note") if r["action"] == "pool_error"]
    assert note["pool"] == "bad"
    assert "RuntimeError: the catalog endpoint answered garbage" in note["reason"]
    h.now += 5
    h.executor.tick()  # said once, not every tick
    assert len([r for r in h.records("note") if r["action"] == "pool_error"]) == 1
