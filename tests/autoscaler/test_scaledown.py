"""Scale-down decisions: which idle or under-used nodes are released, and which are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from federation.autoscaler.decide import decide, plan
from federation.autoscaler.planner import Constraint, Node, PoolState, Resources, Task
from federation.autoscaler.scaledown import (
    Occupancy,
    Work,
    plan_scale_down,
    scale_down,
    utilisation,
)
from federation.errors import ValidationError
from federation.providers.base import InstanceType
from federation.specs.pool import PoolSpec, parse_pool

M5_LARGE = InstanceType("m5.large", 2000, 8192, 0, 0.096, 0.035, ("us-east-1a", "us-east-1b"))
NOW = 1000.0


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


# -- under a utilisation threshold ---------------------------------------------------------


@dataclass
class N:
    """A node of the table: its work, and for how long it has been under the threshold."""

    id: str
    work: list[Work] = field(default_factory=list)
    under_for: float | None = 600.0  # seconds under the threshold at NOW (None: not under)
    zone: str = "us-east-1a"
    price: float | None = None
    draining: bool = False
    drained_by_us: bool = False


def svc(cpu: int, mem: int = 512, **kw: Any) -> Work:
    kw.setdefault("alloc_id", f"svc-{cpu}-{mem}")
    kw.setdefault("group", "web/g")
    return Work(resources=Resources(cpu, mem), **kw)


def batch(cpu: int, mem: int = 512) -> Work:
    return Work(f"batch-{cpu}", "etl/g", Resources(cpu, mem), batch=True)


def build(nodes: list[N], **spec: Any) -> tuple[PoolState, Occupancy]:
    states, work, under, drained = [], {}, {}, {}
    for n in nodes:
        used = Resources()
        for w in n.work:
            used = used + w.resources
        states.append(Node(n.id, "m5.large", Resources(2000, 8192), used, zone=n.zone,
                           price_per_hour=n.price, draining=n.draining,
                           idle_since=(NOW - 600.0) if not n.work else None))
        work[n.id] = tuple(n.work)
        if n.under_for is not None:
            under[n.id] = NOW - n.under_for
        if n.drained_by_us:
            drained[n.id] = "utilisation 10% under 50%"
    spec = {"scale_down_idle": "5m", "scale_down_utilization": 0.5, **spec}
    return pool(states, **spec), Occupancy(work=work, under_since=under, drained=drained)


ZONE_A = Constraint("zone", "=", "us-east-1a")

UNDER = [
    # name, nodes, pool spec, released, blocked
    ("a node under the threshold whose service fits elsewhere is released",
     [N("a", [svc(400)]), N("b", [svc(1200, alloc_id="big")], under_for=None)], {},
     ["a"], []),
    ("above the threshold stays",
     [N("a", [svc(1200)], under_for=None), N("b", [svc(1200)], under_for=None)], {}, [], []),
    ("without scale_down_utilization a busy node stays",
     [N("a", [svc(400)]), N("b", [svc(1200)], under_for=None)],
     {"scale_down_utilization": None}, [], []),
    ("not under the threshold for scale_down_idle yet",
     [N("a", [svc(400)], under_for=100.0), N("b", [svc(1200)], under_for=None)], {}, [], []),
    ("memory counts: 10% CPU but 75% memory is not under 50%",
     [N("a", [svc(200, 6144)]), N("b", [])], {}, ["b"], []),
    ("a service that fits on no other node keeps its node",
     [N("a", [svc(400)]), N("b", [svc(1800)], under_for=None)], {}, [], ["a"]),
    ("a constraint the other nodes fail keeps the node",
     [N("a", [svc(400, constraints=(ZONE_A,))]),
      N("b", [svc(1200)], under_for=None, zone="us-east-1b")], {}, [], ["a"]),
    ("distinct_hosts: a copy of the group already on the other node keeps it",
     [N("a", [svc(400, alloc_id="web-1", max_per_node=1)]),
      N("b", [svc(1200, alloc_id="web-0", max_per_node=1)], under_for=None)], {}, [], ["a"]),
    ("batch work needs no room elsewhere: it finishes in place",
     [N("a", [batch(400)]), N("b", [svc(1800)], under_for=None)], {}, ["a"], []),
    ("min_nodes is respected",
     [N("a", [svc(400)]), N("b", [svc(1200)], under_for=None)], {"min_nodes": 2}, [], []),
    ("two under-used nodes: the second has nowhere left to go",
     [N("a", [svc(400)], price=0.2), N("b", [svc(600)], price=0.1)], {}, ["a"], ["b"]),
    ("room taken by one move is gone for the next",
     [N("a", [svc(400)], price=0.2), N("b", [svc(400)], price=0.1),
      N("c", [svc(1400)], under_for=None)], {}, ["a"], ["b"]),
    ("most expensive first",
     [N("a", [svc(400)], price=0.1), N("b", [svc(400)], price=0.3),
      N("c", [svc(1200)], under_for=None)],
     {"min_nodes": 2}, ["b"], []),
    ("services leaving a draining node take room first",
     [N("a", [svc(400)]), N("b", [svc(1200)], under_for=None),
      N("c", [svc(700)], draining=True, under_for=None)], {}, [], ["a"]),
    ("a node drained by the autoscaler is terminated once empty",
     [N("a", [], draining=True, drained_by_us=True), N("b", [svc(1200)], under_for=None)], {},
     ["a"], []),
    ("a node drained by the autoscaler is kept while batch work runs there",
     [N("a", [batch(300)], draining=True, drained_by_us=True),
      N("b", [svc(1200)], under_for=None)], {}, [], []),
    ("a node someone else drained is left alone",
     [N("a", [], draining=True), N("b", [svc(1200)], under_for=None)], {}, [], []),
]  # fmt: skip


@pytest.mark.parametrize("name,nodes,spec,released,blocked", UNDER, ids=[c[0] for c in UNDER])
def test_scale_down_under_the_utilisation_threshold(name, nodes, spec, released, blocked):
    p, occ = build(nodes, **spec)
    result = scale_down([p], now=NOW, occupancy=occ)
    assert [d.node_id for d in result.release] == released
    assert [b.node_id for b in result.blocked] == blocked


def test_the_reasons_say_what_moves_where_and_why_a_node_stays():
    p, occ = build([N("a", [svc(400), batch(100)]), N("b", [svc(1200)], under_for=None)])
    (down,) = scale_down([p], now=NOW, occupancy=occ).release
    assert down.reason.startswith("utilisation 25% (500m CPU, 1024 MiB of 2000m CPU, 8192 MiB)"
                                  " under 50% for 600s (pool aws releases after 300s)")
    assert "1 service allocation(s) fit on b" in down.reason
    assert "1 batch allocation(s) finish here first" in down.reason
    assert "1 node(s) remain, min_nodes 0" in down.reason

    p, occ = build([N("a", [svc(400, alloc_id="web-1")]), N("b", [svc(1800)], under_for=None)])
    (kept,) = scale_down([p], now=NOW, occupancy=occ).blocked
    assert kept.reason == ("node a stays: its utilisation 20% is under 50% but web-1 (web/g, "
                           "400m CPU, 512 MiB) fits on no other node")


def test_a_node_given_demand_takes_no_moved_work():
    p, occ = build([N("a", [svc(400)]), N("b", [svc(1000)], under_for=None)])
    assert [d.node_id for d in decide([], [p], now=NOW, occupancy=occ).plan.scale_down] == ["a"]
    # A pending task pinned to b: b's room is spoken for, so a's service cannot move there.
    pinned = Task("t0", Resources(900, 512), (Constraint("node.id", "=", "b"),))
    busy = decide([pinned], [p], now=NOW, occupancy=occ)
    assert busy.plan.scale_down == () and [b.node_id for b in busy.blocked] == ["a"]


UTILISATION = [
    (Resources(), Resources(2000, 8192), 0.0),
    (Resources(500, 1024), Resources(2000, 8192), 0.25),
    (Resources(500, 6144), Resources(2000, 8192), 0.75),
    (Resources(0, 0, 1), Resources(2000, 8192, 4), 0.25),
    (Resources(0, 0, 1), Resources(2000, 8192, 0), 1.0),
]


@pytest.mark.parametrize("allocated,capacity,share", UTILISATION)
def test_utilisation_is_the_most_used_dimension(allocated, capacity, share):
    assert utilisation(allocated, capacity) == pytest.approx(share)


@pytest.mark.parametrize("value,fraction", [(0.5, 0.5), ("50%", 0.5), (1, 1.0), (None, None)])
def test_scale_down_utilization_accepts_a_fraction_or_a_percentage(value, fraction):
    spec = parse_pool({"name": "p", "provider": "local", "scale_down_utilization": value})
    assert spec.scale_down_utilization == fraction


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True, "150%"])
def test_scale_down_utilization_out_of_range_names_the_field(value):
    with pytest.raises(ValidationError) as err:
        parse_pool({"name": "p", "provider": "local", "scale_down_utilization": value})
    assert err.value.field == "scale_down_utilization"
    assert "fraction from 0 to 1" in str(err.value)
