"""The placement vocabulary every part of federation shares: resources and GPU fit, node
attributes and usage, constraints, allocation statuses and the one fit check.

A leaf package: it imports nothing from federation except :mod:`federation.errors`, so the
replicated state machine, the scheduler, the autoscaler and the API can all depend on it and
on nothing of each other's. A change here changes what ``plan.apply`` accepts: see
:data:`federation.model.fit.CHECK_VERSION`.
"""

from federation.model.allocations import (
    LIVE_CLIENT_STATUSES,
    AllocationView,
    allocation_view,
    is_live,
)
from federation.model.constraints import (
    NODE_ATTRIBUTES,
    OPERATORS,
    Constraint,
    ConstraintCache,
    is_known_attribute,
)
from federation.model.fit import CHECK_VERSION, per_node_limit, rejection
from federation.model.nodes import NodeView, node_attributes, node_view
from federation.model.resources import (
    MILLI_PER_GPU,
    Resources,
    ResourceTotals,
    gpu_per_device_milli,
    resources_of_record,
)
from federation.model.usage import NodeUsage, Usage

__all__ = [
    "CHECK_VERSION",
    "LIVE_CLIENT_STATUSES",
    "MILLI_PER_GPU",
    "NODE_ATTRIBUTES",
    "OPERATORS",
    "AllocationView",
    "Constraint",
    "ConstraintCache",
    "NodeUsage",
    "NodeView",
    "ResourceTotals",
    "Resources",
    "Usage",
    "allocation_view",
    "gpu_per_device_milli",
    "is_known_attribute",
    "is_live",
    "node_attributes",
    "node_view",
    "per_node_limit",
    "rejection",
    "resources_of_record",
]
