"""Scale-down decisions: which idle nodes are released, and which are kept."""

from __future__ import annotations

import pytest

from federation.autoscaler.decide import plan
from federation.autoscaler.planner import Node, PoolState, Resources, Task
from federation.autoscaler.scaledown import plan_scale_down
from federation.providers.base import InstanceType
from federation.specs.pool import PoolSpec

M5_LARGE = InstanceType("m5.large", 2000, 8192, 0, 0.096, 0.035, ("us-east-1a", "us-east-1b"))


def pool(nodes, **spec):
    return PoolState(
        PoolSpec(name="aws", provider="aws", region="us-east-1", **spec), (M5_LARGE,), tuple(nodes)
    )


SCALE_DOWN = [
    # id, min_nodes, idle_since per node (None = busy), now, expected node ids released
    ("idle long enough", 0, {"a": 0.0, "b": None}, 400.0, ["a"]),
    ("not idle long enough", 0, {"a": 200.0}, 400.0, []),
    ("min_nodes respected", 1, {"a": 0.0, "b": 0.0}, 400.0, ["a"]),
    ("min_nodes equal to size keeps all", 2, {"a": 0.0, "b": 0.0}, 400.0, []),
]


@pytest.mark.parametrize(
    "name,min_nodes,idle,now,expected", SCALE_DOWN, ids=[c[0] for c in SCALE_DOWN]
)
def test_scale_down(name, min_nodes, idle, now, expected):
    nodes = [
        Node(
            nid,
            "m5.large",
            Resources(2000, 8192),
            Resources() if since is not None else Resources(500, 512),
            idle_since=since,
        )
        for nid, since in idle.items()
    ]
    p = pool(nodes, min_nodes=min_nodes, scale_down_idle="5m")
    down = plan_scale_down([p], now=now)
    assert [d.node_id for d in down] == expected
    for d in down:
        assert d.hourly_cost == pytest.approx(0.096) and "idle for" in d.reason


def test_a_node_given_demand_is_not_scaled_down():
    node = Node("a", "m5.large", Resources(2000, 8192), idle_since=0.0)
    p = pool([node], scale_down_idle="60s")
    assert [d.node_id for d in plan([], [p], now=1000.0).scale_down] == ["a"]
    busy = plan([Task("t0", Resources(500, 512))], [p], now=1000.0)
    assert busy.scale_down == () and busy.covered == ("t0",)
