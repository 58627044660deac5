"""Plain data the scheduler plans with: task-group demands, placements, plans and reports.

The vocabulary shared with the rest of federation (resources, node and allocation views,
constraints) is :mod:`federation.model`'s and is re-exported here for the scheduler's modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.errors import ValidationError
from federation.model import (
    MILLI_PER_GPU,
    NODE_ATTRIBUTES,
    OPERATORS,
    AllocationView,
    Constraint,
    NodeView,
    Resources,
    ResourceTotals,
)

__all__ = [
    "MILLI_PER_GPU", "NODE_ATTRIBUTES", "OPERATORS", "AllocationView", "Constraint",
    "Eviction", "FilterReport", "NodeView", "PlacementDecision", "Plan", "ResourceTotals",
    "Resources", "Spread", "TaskGroupDemand",
]


@dataclass(frozen=True)
class Spread:
    """Spread a group across the values of an attribute, optionally to target percentages."""

    attribute: str
    targets: Mapping[str, float] = field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class TaskGroupDemand:
    """One group of a job, as the scheduler needs it."""

    job_id: str
    name: str
    count: int
    resources: Resources
    constraints: tuple[Constraint, ...] = ()
    spread: Spread | None = None
    distinct_hosts: bool = False
    max_per_node: int | None = None
    priority: int = 50
    gang: bool = False
    job_type: str = "service"
    queue: str = "default"
    algorithm: str = "binpack"  # or "spread": prefer emptier nodes

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValidationError("count must not be negative", field="count")
        if not 0 <= self.priority <= 100:
            raise ValidationError("priority must be within 0..100", field="priority")
        if self.algorithm not in ("binpack", "spread"):
            raise ValidationError("algorithm is binpack or spread", field="algorithm")


@dataclass(frozen=True)
class PlacementDecision:
    """Put instance ``index`` of ``group`` on ``node_id``, using these GPU devices."""

    job_id: str
    group: str
    index: int
    node_id: str
    resources: Resources
    gpu_devices: tuple[int, ...] = ()
    score: float = 0.0


@dataclass
class FilterReport:
    """Why nodes were not used for a group: counts per reason, for a job's status."""

    nodes_evaluated: int = 0
    nodes_feasible: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    exhausted: dict[str, int] = field(default_factory=dict)
    gang_incomplete: bool = False
    unplaced: int = 0

    def note_filtered(self, reason: str) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + 1

    def note_exhausted(self, resource: str) -> None:
        self.exhausted[resource] = self.exhausted.get(resource, 0) + 1

    def explain(self) -> str:
        """One line a person can act on."""
        parts = [f"{self.unplaced} unplaced", f"{self.nodes_evaluated} nodes evaluated"]
        parts += [f"{n} filtered by {reason}" for reason, n in sorted(self.filtered.items())]
        parts += [f"{n} exhausted {res}" for res, n in sorted(self.exhausted.items())]
        if self.gang_incomplete:
            parts.append("gang could not be completed: nothing placed")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes_evaluated": self.nodes_evaluated,
            "nodes_feasible": self.nodes_feasible,
            "filtered": dict(self.filtered),
            "exhausted": dict(self.exhausted),
            "gang_incomplete": self.gang_incomplete,
            "unplaced": self.unplaced,
            "explanation": self.explain(),
        }


@dataclass(frozen=True)
class Eviction:
    """Evict this allocation so a higher-priority placement fits."""

    allocation_id: str
    node_id: str
    priority: int
    for_job: str


@dataclass
class Plan:
    """A scheduler decision, to be checked and committed as one unit by the plan applier."""

    placements: list[PlacementDecision] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    unplaced: dict[str, FilterReport] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.unplaced
