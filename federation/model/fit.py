"""The one fit check: can this node take one more instance of this group now?

Used by the scheduler (feasibility), the plan applier inside the replicated state machine
(re-checking a plan against the latest state), the autoscaler (what existing nodes still
cover) and the API (plan previews), so that what one counts as fitting the others place.

In order, cheapest first: node status and drain, constraints (cached per class of identical
nodes), the group's per-node limit (``distinct_hosts`` is a limit of one, ``max_per_node``
any other), then resources: CPU, memory, and GPUs per device (whole devices must be fully
free; a share needs one device with that much room).

:data:`CHECK_VERSION` names these rules. ``plan.apply`` entries carry the version they were
planned under; the state machine refuses a version it does not know, the same way on every
server, so a log written under other rules never silently means something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from federation.model.allocations import AllocationView
from federation.model.constraints import ConstraintCache
from federation.model.nodes import NodeView
from federation.model.resources import MILLI_PER_GPU, Resources
from federation.model.usage import Usage, free_cpu, free_gpu_devices, free_memory

# 1: fit per node. 2: also no second live allocation for an instance (plan_check).
CHECK_VERSION = 2
KNOWN_CHECK_VERSIONS = frozenset({1, CHECK_VERSION})


def per_node_limit(distinct_hosts: bool, max_per_node: int | None) -> int | None:
    """Instances of one group a node may hold (``None``: no limit)."""
    return 1 if distinct_hosts else max_per_node


def limit_reason(distinct_hosts: bool) -> str:
    return "distinct_hosts" if distinct_hosts else "max_per_node"


def resource_shortfall(node: NodeView, resources: Resources, usage: Usage) -> str | None:
    """The first resource that does not fit (``cpu``, ``memory``, ``gpu``, ``gpu_share``)."""
    if free_cpu(node, usage) < resources.cpu_milli:
        return "cpu"
    if free_memory(node, usage) < resources.memory_mib:
        return "memory"
    if resources.gpu:
        free = free_gpu_devices(node, usage)
        if sum(1 for f in free if f >= MILLI_PER_GPU) < resources.gpu:
            return "gpu"
    elif resources.gpu_share_milli:
        free = free_gpu_devices(node, usage)
        if not any(f >= resources.gpu_share_milli for f in free):
            return "gpu_share"
    return None


REJECTED = "rejected"


def rejection(
    node: NodeView,
    resources: Resources,
    usage: Usage,
    constraints: ConstraintCache,
    limit: int | None = None,
    here: int = 0,
    *,
    limit_reason: str = "max_per_node",
    explain: bool = True,
) -> str | None:
    """Why ``node`` cannot take one more instance, or ``None`` when it can.

    ``here`` is how many instances of the group the node holds already (committed and
    planned), checked against ``limit`` (:func:`per_node_limit`; ``limit_reason`` names it in
    the reason). The reason reads
    ``filter:<why>`` for a node ruled out by status, constraint or limit, ``resource:<name>``
    for one that is full; with ``explain=False`` it is only :data:`REJECTED` (faster).
    """
    if node.status != "ready":
        return f"filter:status {node.status}" if explain else REJECTED
    if node.draining:
        return "filter:draining"
    failing = constraints.first_failing(node)
    if failing is not None:
        return f"filter:constraint {failing}" if explain else REJECTED
    if limit is not None and here >= limit:
        return f"filter:{limit_reason}"
    short = resource_shortfall(node, resources, usage)
    if short is not None:
        return f"resource:{short}" if explain else REJECTED
    return None


def admission(resources: Resources, usage: Usage, constraints: ConstraintCache,
              limit: int | None = None, here: Callable[[str], int] | None = None,
              ) -> Callable[[NodeView], bool]:
    """``rejection(...) is None`` for many nodes against one ask: what does not change from
    node to node is bound once (the planner's sampling loop asks this hundreds of thousands
    of times a pass). ``here(node_id)`` counts the group's instances on a node, checked
    against ``limit``. ``usage`` is read as it is at each call (the planner's overlay grows
    while it samples)."""
    cpu_ask, memory_ask = resources.cpu_milli, resources.memory_mib
    devices = bool(resources.gpu or resources.gpu_share_milli)
    used_cpu, used_memory = usage.cpu_milli, usage.memory_mib
    constrained = not constraints.empty
    counted = limit is not None and here is not None

    def admits(node: NodeView) -> bool:
        if node.status != "ready" or node.draining:
            return False
        if constrained and constraints.first_failing(node) is not None:
            return False
        node_id = node.id
        if counted and here(node_id) >= limit:  # type: ignore[misc, operator]
            return False
        capacity, allocated = node.capacity, node.allocated
        if capacity.cpu_milli - allocated.cpu_milli - used_cpu.get(node_id, 0) < cpu_ask:
            return False
        if (capacity.memory_mib - allocated.memory_mib - used_memory.get(node_id, 0)
                < memory_ask):
            return False
        return not devices or resource_shortfall(node, resources, usage) is None
    return admits


def devices_free(node: NodeView, resources: Resources, devices: Sequence[int],
                 usage: Usage) -> bool:
    """Whether the GPU devices chosen for one instance are the right number and still have
    room for it."""
    if resources.gpu_milli == 0:
        return True
    if len(set(devices)) != resources.devices_wanted or len(devices) != len(set(devices)):
        return False
    free = free_gpu_devices(node, usage)
    need = resources.gpu_per_device_milli
    return all(0 <= d < len(free) and free[d] >= need for d in devices)


def node_takes(
    node: NodeView,
    asks: Sequence[tuple[str, str, Resources, Sequence[int]]],
    freed: Sequence[AllocationView] = (),
) -> bool:
    """Whether ``node`` (its latest view) can hold every ask placed on it, after ``freed``
    allocations on it are released: the plan applier's per-node re-check. An ask is
    ``(job_id, group, resources, gpu devices)``."""
    if node.status != "ready" or node.draining:
        return False
    usage = Usage()
    for alloc in freed:
        usage.release(node, alloc)
    for job_id, group, res, devices in asks:
        if resource_shortfall(node, res, usage) is not None or not devices_free(
                node, res, devices, usage):
            return False
        usage.add(node, job_id, group, res, devices)
    return True


def count_on_nodes(allocations: Sequence[AllocationView], job_id: str, group: str
                   ) -> Mapping[str, int]:
    """Instances of ``job_id``/``group`` per node."""
    counts: dict[str, int] = {}
    for alloc in allocations:
        if alloc.job_id == job_id and alloc.group == group:
            counts[alloc.node_id] = counts.get(alloc.node_id, 0) + 1
    return counts


def pick_devices(node: NodeView, resources: Resources, usage: Usage) -> tuple[int, ...]:
    """GPU devices for one instance that fits (:func:`resource_shortfall` is ``None``): the
    lowest-numbered fully free devices for whole GPUs, the tightest device for a share."""
    if resources.gpu_milli == 0:
        return ()
    free = free_gpu_devices(node, usage)
    if resources.gpu:
        return tuple(d for d, f in enumerate(free) if f >= MILLI_PER_GPU)[: resources.gpu]
    fitting = [d for d, f in enumerate(free) if f >= resources.gpu_share_milli]
    return (min(fitting, key=lambda d: (free[d], d)),)
