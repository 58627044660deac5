"""Ranking: bin-packing, spread, price on ties, anti-affinity, GPU fragmentation."""

from __future__ import annotations

import pytest

from federation.scheduler.feasibility import Usage
from federation.scheduler.fragmentation import TaskShape, build_profile
from federation.scheduler.ranking import Affinity, candidate_limit, choose_devices, rank
from federation.scheduler.types import Constraint, Resources, Spread
from tests.scheduler.helpers import group, node


def best(nodes, g, **kw):
    return rank(nodes, g, Usage(), **kw)[0].node.id


def test_binpack_prefers_the_fuller_node():
    nodes = [node("empty"), node("busy", allocated=Resources(3000, 4096))]
    assert best(nodes, group()) == "busy"


def test_spread_algorithm_prefers_the_emptier_node():
    nodes = [node("empty"), node("busy", allocated=Resources(3000, 4096))]
    assert best(nodes, group(algorithm="spread")) == "empty"


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ({"cloud": 0.5, "onprem": 0.0}, "onprem"),
        ({"cheap": 0.1, "dear": 0.9}, "cheap"),
        ({"b": 0.2, "a": 0.2}, "a"),  # equal price: node id decides, deterministically
    ],
)
def test_ties_go_to_the_cheaper_node(prices, expected):
    nodes = [node(name, price_per_hour=price) for name, price in prices.items()]
    assert best(nodes, group()) == expected


def test_spread_prefers_an_attribute_value_with_fewer_instances():
    nodes = [node("a1", zone="a"), node("b1", zone="b")]
    g = group(count=4, spread=Spread("zone"))
    assert best(nodes, g, value_counts={"a": 2, "b": 0}, known_values=["a", "b"]) == "b1"


def test_spread_targets_steer_towards_the_value_below_its_percentage():
    nodes = [node("a1", zone="a"), node("b1", zone="b")]
    g = group(count=10, spread=Spread("zone", targets={"a": 80, "b": 20}))
    counts = {"a": 5, "b": 2}  # a is at 5 of 8 desired, b at 2 of 2
    assert best(nodes, g, value_counts=counts, known_values=["a", "b"]) == "a1"


def test_anti_affinity_moves_instances_of_one_job_apart_when_nodes_are_alike():
    nodes = [node("a"), node("b")]
    assert best(nodes, group(count=2), job_on_node={"a": 1}) == "b"


def test_soft_affinity_adds_its_weight():
    nodes = [node("plain"), node("ssd", labels={"disk": "ssd"})]
    aff = [Affinity(Constraint("labels.disk", "=", "ssd"), weight=50)]
    assert best(nodes, group(), affinities=aff) == "ssd"


def test_a_gpu_share_goes_to_the_device_with_least_room_that_fits():
    n = node(gpu=3, gpu_used_milli=(500, 100, 0))
    devices, _ = choose_devices(n, Resources(100, 0, gpu_share_milli=400), Usage(), None)
    assert devices == (0,)


def test_whole_gpus_take_fully_free_devices():
    n = node(gpu=4, gpu_used_milli=(0, 300, 0, 0))
    devices, _ = choose_devices(n, Resources(100, 0, gpu=2), Usage(), None)
    assert devices == (0, 2)


def test_fragmentation_avoids_leaving_a_share_too_small_for_the_expected_work():
    # Expected work asks for half a GPU. Tightest fit would leave 300 milli on "shared",
    # which nothing expected can use; the fresh GPU keeps 700 milli, enough for one more.
    profile = build_profile([TaskShape(1000, 1, 500)])
    nodes = [
        node("shared", cpu=32000, mem=65536, gpu=1, gpu_used_milli=(400,)),
        node("fresh", cpu=32000, mem=65536, gpu=1),
    ]
    g = group(cpu=1000, share=300)
    assert best(nodes, g) == "shared"  # without a profile: tightest fit
    assert best(nodes, g, profile=profile) == "fresh"


def test_fragmentation_avoids_stranding_gpus_behind_exhausted_cpu():
    # Taking the last CPU of a node leaves its free GPU unusable.
    profile = build_profile([TaskShape(4000, 1, 1000)])
    nodes = [
        node("tight", cpu=8000, mem=65536, gpu=2),
        node("roomy", cpu=64000, mem=65536, gpu=2, gpu_used_milli=(1000, 0)),
    ]
    assert best(nodes, group(cpu=7000, gpu=1)) == "tight"  # without a profile: tightest fit
    assert best(nodes, group(cpu=7000, gpu=1), profile=profile) == "roomy"


@pytest.mark.parametrize(
    ("kw", "feasible", "expected"),
    [
        ({"job_type": "batch"}, 1000, 2),
        ({"job_type": "service"}, 1024, 10),
        ({"job_type": "service"}, 5, None),  # few nodes: score them all
        ({"job_type": "batch", "gpu": 1}, 1000, None),  # GPU work: fragmentation needs all
        ({"job_type": "batch", "gang": True}, 1000, None),
    ],
)
def test_candidate_limit(kw, feasible, expected):
    assert candidate_limit(group(**kw), feasible) == expected
