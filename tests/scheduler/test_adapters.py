"""From API node records and job specs to scheduler types."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.scheduler.adapters import node_view, task_groups
from federation.scheduler.types import Constraint, Resources, Spread
from federation.scheduler.workload import profile_of


def test_node_record_from_the_api():
    n = node_view(
        {
            "id": "n1",
            "pool": "rack-a",
            "provider": "onprem",
            "zone": "dc1",
            "labels": {"rack": "r1"},
            "capacity": {"cpu_milli": 8000, "memory_mib": 16384, "gpu": 2},
            "allocated": {"cpu_milli": 1000, "memory_mib": 512, "gpu": 1},
            "gpu_used_milli": [1000, 0],
            "status": "ready",
        }
    )
    assert n.capacity == Resources(8000, 16384, 2)
    assert n.allocated == Resources(1000, 512)
    assert n.gpu_used == (1000, 0)
    assert n.attribute("labels.rack") == "r1" and n.price_per_hour == 0.0


def test_job_spec_groups_become_demands():
    spec = {
        "id": "etl",
        "type": "batch",
        "priority": 70,
        "queue": "analytics",
        "groups": [
            {
                "name": "worker",
                "count": 4,
                "gang": True,
                "resources": {"cpu": 500, "memory": 256, "gpu": 0.25},
                "constraints": [{"attribute": "provider", "operator": "!=", "value": "gcp"}],
                "spread": {"attribute": "zone", "targets": {"a": 75, "b": 25}},
                "max_per_node": -1,
            }
        ],
    }
    (g,) = task_groups(spec)
    assert g.resources == Resources(500, 256, gpu_share_milli=250)
    assert g.constraints == (Constraint("provider", "!=", "gcp"),)
    assert g.spread == Spread("zone", {"a": 75.0, "b": 25.0})
    assert (g.priority, g.queue, g.job_type, g.gang, g.max_per_node) == (
        70,
        "analytics",
        "batch",
        True,
        None,
    )


def test_a_bad_constraint_in_a_spec_is_a_validation_error():
    spec = {
        "id": "x",
        "groups": [{"name": "g", "constraints": [{"attribute": "zone", "operator": "~"}]}],
    }
    with pytest.raises(ValidationError):
        task_groups(spec)


def test_profile_of_a_workload_counts_instances():
    profile = profile_of({Resources(1000, 0, gpu=1): 3, Resources(1000, 0): 1})
    assert profile.size == 2
