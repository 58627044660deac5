"""Feasibility: constraints, node status, per-group limits and resources, with reasons."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.scheduler.feasibility import (
    ConstraintCache,
    Usage,
    add_instance,
    constraint_holds,
    feasible_nodes,
    resource_shortfall,
)
from federation.scheduler.types import Constraint, FilterReport, Resources
from tests.scheduler.helpers import group, node

AWS_NODE = node(
    "i-123",
    provider="aws",
    pool="burst",
    region="us-east-1",
    zone="us-east-1a",
    instance_type="m5.large",
    labels={"team": "ml", "disk": "ssd"},
)


@pytest.mark.parametrize(
    ("attribute", "operator", "value", "expected"),
    [
        ("provider", "=", "aws", True),
        ("provider", "=", "gcp", False),
        ("provider", "!=", "gcp", True),
        ("provider", "!=", "aws", False),
        ("zone", "in", ["us-east-1a", "us-east-1b"], True),
        ("zone", "in", ["us-east-1c"], False),
        ("zone", "not_in", ["us-east-1c"], True),
        ("zone", "not_in", ["us-east-1a"], False),
        ("instance_type", "regex", "^m5\\.", True),
        ("instance_type", "regex", "^c5\\.", False),
        ("labels.team", "=", "ml", True),
        ("labels.team", "exists", None, True),
        ("labels.gpu", "exists", None, False),
        ("labels.gpu", "=", "a100", False),
        ("labels.gpu", "!=", "a100", True),  # a missing label is not equal to anything
        ("labels.gpu", "not_in", ["a100"], True),
        ("rack", "=", "r1", False),  # the node has no rack
        ("rack", "exists", None, False),
        ("node.id", "=", "i-123", True),
        ("node.id", "in", ["i-9"], False),
        ("pool", "regex", "bur", True),
        ("region", "=", "us-east-1", True),
    ],
)
def test_constraint_operators(attribute, operator, value, expected):
    assert constraint_holds(Constraint(attribute, operator, value), AWS_NODE) is expected


@pytest.mark.parametrize(
    "spec",
    [
        {"attribute": "colour", "operator": "=", "value": "x"},
        {"attribute": "provider", "operator": "~", "value": "x"},
        {"attribute": "zone", "operator": "in", "value": "us-east-1a"},
        {"attribute": "zone", "operator": "regex", "value": "("},
    ],
)
def test_bad_constraints_are_rejected_with_a_validation_error(spec):
    with pytest.raises(ValidationError):
        Constraint.from_spec(spec)


def test_constraint_from_job_spec_form():
    c = Constraint.from_spec({"attribute": "labels.rack", "operator": "in", "value": ["r1", "r2"]})
    assert constraint_holds(c, node(labels={"rack": "r2"}))
    assert not constraint_holds(c, node(labels={"rack": "r3"}))


@pytest.mark.parametrize(
    ("demand", "allocated", "gpu_used", "expected"),
    [
        (Resources(1000, 512), Resources(), (), None),
        (Resources(5000, 512), Resources(), (), "cpu"),
        (Resources(1000, 512), Resources(3500, 0), (), "cpu"),
        (Resources(1000, 9000), Resources(), (), "memory"),
        (Resources(1000, 512, gpu=2), Resources(), (0, 0), None),
        (Resources(1000, 512, gpu=2), Resources(), (0, 300), "gpu"),
        (Resources(1000, 512, gpu=3), Resources(), (0, 0), "gpu"),
        (Resources(1000, 512, gpu_share_milli=700), Resources(), (400, 400), "gpu_share"),
        (Resources(1000, 512, gpu_share_milli=600), Resources(), (400, 900), None),
        (Resources(1000, 512, gpu=1), Resources(), (), "gpu"),  # a node without GPUs
    ],
)
def test_resource_fit(demand, allocated, gpu_used, expected):
    n = node(cpu=4000, mem=8192, gpu=len(gpu_used), allocated=allocated, gpu_used_milli=gpu_used)
    assert resource_shortfall(n, demand, Usage()) == expected


def test_usage_of_the_plan_counts_against_free_resources():
    n = node(cpu=4000, gpu=1)
    usage = Usage()
    add_instance(usage, n, group(cpu=3000, share=600), devices=[0])
    assert resource_shortfall(n, Resources(1000, 0, gpu_share_milli=400), usage) is None
    assert resource_shortfall(n, Resources(1000, 0, gpu_share_milli=500), usage) == "gpu_share"
    assert resource_shortfall(n, Resources(1500, 0), usage) == "cpu"


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"status": "down"}, "status down"),
        ({"draining": True}, "draining"),
    ],
)
def test_nodes_that_are_not_ready_or_draining_are_filtered(kw, reason):
    report = FilterReport()
    assert feasible_nodes([node(**kw)], group(), report=report) == []
    assert report.filtered == {reason: 1}


def test_distinct_hosts_allows_one_instance_per_node():
    g = group(count=3, distinct_hosts=True)
    report = FilterReport()
    out = feasible_nodes([node("a"), node("b")], g, existing_per_node={"a": 1}, report=report)
    assert [n.id for n in out] == ["b"]
    assert report.filtered == {"distinct_hosts": 1}


def test_max_per_node_counts_committed_and_planned_instances():
    g = group(count=5, max_per_node=2)
    a = node("a", cpu=64000, mem=64000)
    usage = Usage()
    add_instance(usage, a, g, devices=[])
    assert feasible_nodes([a], g, usage=usage, existing_per_node={"a": 0}) == [a]
    assert feasible_nodes([a], g, usage=usage, existing_per_node={"a": 1}) == []


def test_report_counts_each_constraint_and_exhausted_resource():
    g = group(
        cpu=3000,
        constraints=(Constraint("provider", "!=", "gcp"), Constraint("zone", "=", "z1")),
    )
    nodes = [
        node("g1", provider="gcp", zone="z1"),
        node("a1", provider="aws", zone="z2"),
        node("a2", provider="aws", zone="z2"),
        node("a3", provider="aws", zone="z1", allocated=Resources(2000, 0)),
        node("a4", provider="aws", zone="z1"),
    ]
    report = FilterReport()
    out = feasible_nodes(nodes, g, report=report)
    assert [n.id for n in out] == ["a4"]
    assert report.filtered == {"constraint provider != gcp": 1, "constraint zone = z1": 2}
    assert report.exhausted == {"cpu": 1}
    assert report.nodes_evaluated == 5 and report.nodes_feasible == 1


def test_constraint_answers_are_cached_per_class_of_identical_nodes():
    cache = ConstraintCache((Constraint("provider", "=", "aws"),))
    nodes = [node(f"n{i}", provider="aws", zone="z1") for i in range(10)]
    for n in nodes:
        assert cache.first_failing(n) is None
    assert cache.class_hits == 9


def test_node_id_constraints_are_not_answered_from_the_class_cache():
    cache = ConstraintCache((Constraint("node.id", "=", "n1"),))
    assert cache.first_failing(node("n1")) is None
    assert cache.first_failing(node("n2")) is not None
