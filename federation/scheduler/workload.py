"""The workload a scheduling pass ranks GPU placements against.

Fragmentation-aware ranking (:mod:`federation.scheduler.fragmentation`) needs to know what
kinds of tasks are expected, as FGD scores nodes against the target workload. In production
that is the mix the cluster runs and is asked to run: the shapes of the live allocations
plus those of the pending instances, one entry per instance. A pass builds it once, and only
when it has GPU work to place. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from federation.model import MILLI_PER_GPU, Resources
from federation.scheduler.fragmentation import TaskShape, WorkloadProfile, build_profile
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.reconcile import JobWork
from federation.scheduler.snapshot import Snapshot


def task_shape(res: Resources) -> TaskShape:
    """The fragmentation model's shape of one instance asking ``res``."""
    if res.gpu_share_milli:
        return TaskShape(res.cpu_milli, 1, res.gpu_share_milli)
    if res.gpu:
        return TaskShape(res.cpu_milli, res.gpu, MILLI_PER_GPU)
    return TaskShape(res.cpu_milli)


def profile_of(counts: Mapping[Resources, int]) -> WorkloadProfile:
    """The profile of a workload given as instance counts per ask."""
    shapes: Counter[TaskShape] = Counter()
    for res, n in counts.items():
        if n > 0:
            shapes[task_shape(res)] += n
    return build_profile(shapes.elements())


def pending_asks(candidates: Iterable[tuple[Mapping[str, Any], JobWork]]
                 ) -> Counter[Resources]:
    """Instances still to place per ask, over the jobs of a pass."""
    out: Counter[Resources] = Counter()
    for job, work in candidates:
        try:
            asks = _asks_of(job, work)
        except Exception:  # noqa: BLE001 - a job whose asks cannot be read is left out
            continue       # of the mix; planning it sets it aside with the reason
        out.update(asks)
    return out


def _asks_of(job: Mapping[str, Any], work: JobWork) -> Counter[Resources]:
    groups = {g["name"]: g for g in job["spec"]["groups"]}
    asks: Counter[Resources] = Counter()
    for gw in work.groups:
        if gw.place and gw.group in groups:
            asks[Resources.from_spec(groups[gw.group].get("resources") or {})] += len(gw.place)
    return asks


def pass_profile(snapshot: Snapshot, candidates: Iterable[tuple[Mapping[str, Any], JobWork]]
                 ) -> WorkloadProfile | None:
    """The live and pending mix of a pass, or ``None`` when nothing would read it: the pass
    places nothing, or no node has a GPU. CPU-only work reads it too where nodes have GPUs
    (the CPU it takes from a GPU node can strand that node's GPUs): a pass of CPU-only work
    ranked without it would pack by CPU alone."""
    pending = pending_asks(candidates)
    if not pending or not NodeSet.of(snapshot.nodes).has_gpus():
        return None
    counts: Counter[Resources] = Counter(a.resources for a in snapshot.allocations)
    counts.update(pending)
    return profile_of(counts)

