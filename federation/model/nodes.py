"""Nodes as placement sees them: capacity, what is allocated, per-device GPU use and the
attributes constraints read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from federation.errors import ValidationError
from federation.model.constraints import NODE_ATTRIBUTES
from federation.model.resources import Resources

# The ``cluster`` of a node that is not in a member Kubernetes cluster (an agent's node): the
# federation's own nodes count as one cluster, so ``spread: cluster`` shares work between the
# member clusters and the agents. A member cluster may not take this name.
AGENT_CLUSTER = "federation"


@dataclass(frozen=True)
class NodeView:
    """What placement knows of one node at snapshot time."""

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
    cluster: str = AGENT_CLUSTER  # the member Kubernetes cluster a node belongs to
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
            return self.labels.get(name[len("labels."):])
        if name in NODE_ATTRIBUTES:
            value = getattr(self, name)
            return value if value != "" else None
        raise ValidationError(f"unknown node attribute {name!r}", field="attribute")

    @cached_property
    def class_key(self) -> tuple[Any, ...]:
        """Identity of the node's class: nodes with equal keys answer every constraint that
        does not name ``node.id`` the same way."""
        return (self.provider, self.pool, self.region, self.zone, self.rack,
                self.instance_type, self.cluster, tuple(sorted(self.labels.items())))


def node_attributes(record: Mapping[str, Any]) -> dict[str, str | None]:
    """The attributes a constraint reads on a node record (empty values are missing)."""
    attrs: dict[str, str | None] = {
        key: (str(record.get(key)) if record.get(key) not in (None, "") else None)
        for key in ("provider", "pool", "region", "zone", "rack", "instance_type")
    }
    attrs["cluster"] = str(record.get("cluster") or AGENT_CLUSTER)
    attrs["node.id"] = str(record.get("id") or record.get("name") or "")
    for key, value in (record.get("labels") or {}).items():
        attrs[f"labels.{key}"] = str(value)
    return attrs


def node_view(record: Mapping[str, Any]) -> NodeView:
    """A :class:`NodeView` from a node record as the API returns it (``GET /v1/nodes/{id}``).

    Optional fields: ``allocated`` (same keys as ``capacity``), ``gpu_used_milli`` (one entry
    per GPU), ``instance_type``, ``price_per_hour``, ``draining``, ``status``.
    """
    capacity = Resources.from_spec(record.get("capacity") or {})
    allocated_spec = dict(record.get("allocated") or {})
    used = tuple(int(x) for x in (record.get("gpu_used_milli") or ()))
    if used:
        # The per-device list is the truth for GPUs; the total only says the same again.
        allocated_spec = {**allocated_spec, "gpu": 0, "gpu_milli": 0}
    return NodeView(
        id=str(record.get("id") or record.get("name") or ""),
        capacity=capacity,
        allocated=Resources.from_spec(allocated_spec),
        gpu_used_milli=used,
        provider=str(record.get("provider") or ""),
        pool=str(record.get("pool") or ""),
        region=str(record.get("region") or ""),
        zone=str(record.get("zone") or ""),
        rack=str(record.get("rack") or ""),
        instance_type=str(record.get("instance_type") or ""),
        cluster=str(record.get("cluster") or AGENT_CLUSTER),
        labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
        status=str(record.get("status") or "ready"),
        draining=bool(record.get("draining", False)),
        price_per_hour=float(record.get("price_per_hour") or 0.0),
    )
