"""Plain data the scheduler plans with: node views, task-group demands, allocations, plans.

Immutable dataclasses with units in field names. GPUs come two ways: ``gpu`` whole devices,
or ``gpu_share_milli`` (1..999) for part of one device, as in the Alibaba GPU-sharing trace.
A node tracks ``gpu_used_milli`` per device, so shares can be packed onto devices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from federation.errors import ValidationError

MILLI_PER_GPU = 1000

NODE_ATTRIBUTES = ("provider", "pool", "region", "zone", "rack", "instance_type", "node.id")
OPERATORS = ("=", "!=", "in", "not_in", "regex", "exists")


@dataclass(frozen=True)
class Resources:
    """A resource amount: CPU in millicores, memory in MiB, whole GPUs or a share of one."""

    cpu_milli: int = 0
    memory_mib: int = 0
    gpu: int = 0
    gpu_share_milli: int = 0

    def __post_init__(self) -> None:
        if min(self.cpu_milli, self.memory_mib, self.gpu, self.gpu_share_milli) < 0:
            raise ValidationError("resources must not be negative", field="resources")
        if self.gpu_share_milli >= MILLI_PER_GPU:
            raise ValidationError("gpu_share_milli must be below 1000", field="gpu_share_milli")
        if self.gpu and self.gpu_share_milli:
            raise ValidationError("ask for whole GPUs or a share of one, not both", field="gpu")

    @property
    def gpu_milli(self) -> int:
        """GPU asked for, in milli-GPU (1000 per whole device)."""
        return self.gpu * MILLI_PER_GPU + self.gpu_share_milli

    def __add__(self, other: Resources) -> Resources:
        # Sums describe totals (usage, quotas), so shares add up into milli without a device.
        total_milli = self.gpu_milli + other.gpu_milli
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory_mib + other.memory_mib,
            total_milli // MILLI_PER_GPU,
            total_milli % MILLI_PER_GPU,
        )

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Resources:
        """From a job spec's ``resources`` (``cpu`` millicores, ``memory`` MiB, ``gpu`` devices,
        a fractional ``gpu`` below 1 or ``gpu_milli`` below 1000 for a share)."""
        gpu = spec.get("gpu", 0) or 0
        share = int(spec.get("gpu_milli", 0) or 0)
        if isinstance(gpu, float) and 0 < gpu < 1:
            share, gpu = round(gpu * MILLI_PER_GPU), 0
        return cls(
            cpu_milli=int(spec.get("cpu_milli", spec.get("cpu", 0)) or 0),
            memory_mib=int(spec.get("memory_mib", spec.get("memory", 0)) or 0),
            gpu=int(gpu),
            gpu_share_milli=share,
        )


@dataclass(frozen=True)
class NodeView:
    """What the scheduler knows of one node at snapshot time."""

    id: str
    capacity: Resources
    allocated: Resources = Resources()
    gpu_used_milli: tuple[int, ...] = ()
    provider: str = ""
    pool: str = ""
    region: str = ""
    zone: str = ""
    rack: str = ""
    instance_type: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    status: str = "ready"
    draining: bool = False
    price_per_hour: float = 0.0

    def __post_init__(self) -> None:
        if self.gpu_used_milli and len(self.gpu_used_milli) != self.capacity.gpu:
            raise ValidationError("gpu_used_milli needs one entry per GPU", field="gpu_used_milli")

    @property
    def gpu_used(self) -> tuple[int, ...]:
        return self.gpu_used_milli or (0,) * self.capacity.gpu

    def attribute(self, name: str) -> str | None:
        """Value of a constraint attribute, ``None`` when the node does not have it."""
        if name == "node.id":
            return self.id
        if name.startswith("labels."):
            return self.labels.get(name[len("labels.") :])
        if name in NODE_ATTRIBUTES:
            value = getattr(self, name)
            return value if value != "" else None
        raise ValidationError(f"unknown node attribute {name!r}", field="attribute")

    @cached_property
    def class_key(self) -> tuple[Any, ...]:
        """Identity of the node's class: nodes with equal keys answer every constraint that
        does not name ``node.id`` the same way."""
        return (
            self.provider,
            self.pool,
            self.region,
            self.zone,
            self.rack,
            self.instance_type,
            tuple(sorted(self.labels.items())),
        )


@dataclass(frozen=True)
class Constraint:
    """``{attribute, operator, value}`` from a job spec."""

    attribute: str
    operator: str = "="
    value: Any = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValidationError(f"unknown operator {self.operator!r}", field="operator")
        if not (self.attribute in NODE_ATTRIBUTES or self.attribute.startswith("labels.")):
            raise ValidationError(f"unknown attribute {self.attribute!r}", field="attribute")
        if self.operator in ("in", "not_in") and not isinstance(self.value, list | tuple):
            raise ValidationError(f"{self.operator} needs a list value", field="value")
        if self.operator == "regex":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValidationError(f"bad regex: {exc}", field="value") from exc

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Constraint:
        value = spec.get("value")
        if isinstance(value, list):
            value = tuple(value)
        return cls(str(spec.get("attribute", "")), str(spec.get("operator", "=")), value)

    def __str__(self) -> str:
        if self.operator == "exists":
            return f"{self.attribute} exists"
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.attribute} {self.operator} {value}"


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
class AllocationView:
    """An allocation already committed (or planned) on a node."""

    id: str
    job_id: str
    group: str
    node_id: str
    resources: Resources
    priority: int = 50
    gpu_devices: tuple[int, ...] = ()


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
