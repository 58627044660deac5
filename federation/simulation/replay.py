"""Trace-driven what-if runs behind ``federation simulate``, on the production planner.

The cluster is a snapshot of nodes built from the machine list; the trace's tasks are jobs
(one batch group each), and the whole trace is planned the way the leader plans one
scheduling pass: every job with :func:`federation.scheduler.jobplan.plan_work` against the
one snapshot plus the overlay of what was already planned, in arrival order. Nothing
finishes; a task that fits nowhere is dropped. So the figures are the scheduler's own, not
those of a second engine.

Policies: ``default`` ranks work against the trace's workload profile (as FGD scores
against the target workload; :mod:`federation.scheduler.fragmentation`); ``bestfit`` is the
same planner with an empty profile, where every task takes the tightest fit (the paper's
BestFit score). Tasks of one ``app``
with a ``max_per_node`` are instances of one job, so the limit is the group's own.

Pure apart from measuring the elapsed time of a run, which is reported as a figure.
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.errors import ValidationError
from federation.model import NodeView, Resources
from federation.model.usage import Usage
from federation.scheduler.fragmentation import WorkloadProfile, build_profile
from federation.scheduler.jobplan import plan_work
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.reconcile import GroupWork, JobWork
from federation.scheduler.snapshot import Snapshot
from federation.simulation.trace import MILLI, Machine, SimTask, inflate

POLICIES = ("default", "bestfit")
GPU_MODEL_LABEL = "gpu_model"


@dataclass(frozen=True)
class Placement:
    seq: int
    task_id: str
    node_id: str | None
    gpus: tuple[int, ...] = ()


@dataclass
class SimResult:
    policy: str
    seed: int | None
    inflation: float | None
    offered: int
    placed: int
    dropped: int
    cpu_allocation: float
    memory_allocation: float
    gpu_allocation: float
    unallocated_gpu_pct_at_100: float | None
    unallocated_gpus_at_100: float | None
    curve: list[tuple[float, float]]
    elapsed_s: float  # wall time of the run loop
    cpu_s: float = 0.0  # processor time of the run loop (the same, on an idle machine)
    placements: list[Placement] = field(repr=False, default_factory=list)

    @property
    def placements_per_s(self) -> float:
        return self.offered / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def summary(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "seed": self.seed,
            "inflation": self.inflation,
            "offered": self.offered,
            "placed": self.placed,
            "dropped": self.dropped,
            "cpu_allocation_pct": round(100 * self.cpu_allocation, 3),
            "memory_allocation_pct": round(100 * self.memory_allocation, 3),
            "gpu_allocation_pct": round(100 * self.gpu_allocation, 3),
            "unallocated_gpu_pct_at_100_arrived": None
            if self.unallocated_gpu_pct_at_100 is None
            else round(self.unallocated_gpu_pct_at_100, 3),
            "unallocated_gpus_at_100_arrived": None
            if self.unallocated_gpus_at_100 is None
            else round(self.unallocated_gpus_at_100, 1),
            "curve": [
                {"arrived_pct": round(a, 1), "gpu_allocated_pct": round(b, 3)}
                for a, b in self.curve
            ],
            "elapsed_s": round(self.elapsed_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "placements_per_s": round(self.placements_per_s, 1),
        }



def _interpolate_at(xs: np.ndarray, ys: np.ndarray, x: float) -> float | None:
    if len(xs) == 0 or xs[-1] < x:
        return None
    return float(np.interp(x, xs, ys))



def node_views(machines: Sequence[Machine]) -> NodeSet:
    """The machines as the scheduler's node views (the GPU model as a label)."""
    views = [NodeView(m.machine_id, Resources(m.cpu_milli, m.memory_mib, m.num_gpu),
                      labels={GPU_MODEL_LABEL: m.gpu_model} if m.gpu_model else {})
             for m in machines]
    return NodeSet(sorted(views, key=lambda v: v.id))


def _job_name(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:50] or "app"


@dataclass
class _Jobs:
    """The trace's tasks as jobs: one job per task, or one per app with a per-node limit."""

    apps: dict[str, int] = field(default_factory=dict)  # app job -> instances so far

    def job_of(self, seq: int, task: SimTask) -> tuple[dict[str, Any], JobWork]:
        if task.num_gpu <= 0:
            gpu: float = 0
        elif task.shape.is_sharing:
            gpu = task.gpu_milli_per_gpu / MILLI
        else:
            gpu = task.num_gpu
        group: dict[str, Any] = {
            "name": "task", "count": 1, "task": {"driver": "exec", "command": ["true"]},
            "resources": {"cpu": task.cpu_milli, "memory": task.memory_mib, "gpu": gpu}}
        if task.gpu_spec and task.num_gpu > 0:
            models = [m.strip() for m in task.gpu_spec.split("|") if m.strip()]
            group["constraints"] = [{"attribute": f"labels.{GPU_MODEL_LABEL}",
                                     "operator": "in", "value": models}]
        job_id, index = f"task-{seq}", 0
        if task.app and task.max_per_node >= 0:
            job_id = f"app-{_job_name(task.app)}"
            index = self.apps.get(job_id, 0)
            self.apps[job_id] = index + 1
            group.update(count=index + 1, max_per_node=task.max_per_node)
        spec = {"id": job_id, "type": "batch", "priority": 50, "groups": [group]}
        job = {"id": job_id, "version": 1, "stopped": False, "spec": spec}
        return job, JobWork(job_id, [GroupWork("task", place=[index])])


def run(
    machines: Sequence[Machine],
    tasks: Sequence[SimTask],
    *,
    policy: str = "default",
    seed: int | None = None,
    inflation: float | None = None,
    shuffle: bool = False,
    profile_tasks: Iterable[SimTask] | None = None,
    profile: WorkloadProfile | None = None,
) -> SimResult:
    """Offer each task once, in order, to the planner over a snapshot of ``machines``.

    With ``inflation`` the workload is the FGD paper's (see :func:`inflate`); with only
    ``shuffle`` the tasks are shuffled with ``seed``. The default policy's workload profile is
    built from ``profile_tasks`` (default: the tasks as given, before inflation) unless a
    ``profile`` is given.
    """
    if policy not in POLICIES:
        raise ValidationError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}",
                              field="policy")
    nodes = node_views(machines)
    capacity = max(sum(m.num_gpu for m in machines) * MILLI, 1)
    rng_seed = 0 if seed is None else seed
    if inflation is not None:
        if inflation <= 0:
            raise ValidationError("inflation must be positive", field="inflation")
        workload = inflate(tasks, capacity, inflation, rng_seed, shuffle=shuffle)
    elif shuffle:
        workload = list(tasks)
        random.Random(rng_seed).shuffle(workload)
    else:
        workload = list(tasks)
    if policy == "default" and profile is None:
        source = profile_tasks if profile_tasks is not None else tasks
        profile = build_profile(t.shape for t in source)
    elif policy == "bestfit":
        profile = WorkloadProfile.empty()

    snapshot = Snapshot(nodes, (), {}, {})
    jobs = _Jobs()
    usage = Usage()
    arrived = np.zeros(len(workload))
    allocated = np.zeros(len(workload))
    placements: list[Placement] = []
    arrived_milli = allocated_milli = placed = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    for seq, task in enumerate(workload):
        job, work = jobs.job_of(seq, task)
        plan = plan_work(snapshot, job, work, seed=rng_seed, preempt=False, usage=usage,
                         profile=profile, reuse_usage=True)
        usage = plan.usage
        if plan.allocations:
            alloc = plan.allocations[0]
            devices = tuple(alloc["resources"]["gpu_devices"])
            placements.append(Placement(seq, task.task_id, alloc["node_id"], devices))
            allocated_milli += task.gpu_milli
            placed += 1
        else:
            placements.append(Placement(seq, task.task_id, None, ()))
        arrived_milli += task.gpu_milli
        arrived[seq] = arrived_milli / capacity
        allocated[seq] = allocated_milli / capacity
    elapsed = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu

    at_100 = _interpolate_at(arrived, allocated, 1.0)
    curve = []
    final = float(arrived[-1]) if len(arrived) else 0.0
    for pct in range(10, int(final * 100) + 1, 10):
        value = _interpolate_at(arrived, allocated, pct / 100)
        if value is not None:
            curve.append((float(pct), 100 * value))
    if len(arrived) and (not curve or curve[-1][0] < 100 * final - 1e-9):
        curve.append((100 * final, 100 * float(allocated[-1])))
    cpu_cap = max(sum(m.cpu_milli for m in machines), 1)
    mem_cap = max(sum(m.memory_mib for m in machines), 1)
    cpu_used = sum(usage.cpu_milli.values())
    mem_used = sum(usage.memory_mib.values())
    return SimResult(
        policy=policy,
        seed=seed,
        inflation=inflation,
        offered=len(workload),
        placed=placed,
        dropped=len(workload) - placed,
        cpu_allocation=cpu_used / cpu_cap,
        memory_allocation=mem_used / mem_cap,
        gpu_allocation=allocated_milli / capacity,
        unallocated_gpu_pct_at_100=None if at_100 is None else 100 * (1 - at_100),
        unallocated_gpus_at_100=None if at_100 is None else (1 - at_100) * capacity / MILLI,
        curve=curve,
        elapsed_s=elapsed,
        cpu_s=cpu_seconds,
        placements=placements,
    )


def placements_csv(placements: Iterable[Placement]) -> str:
    """``seq,task_id,node_id,gpus`` rows, one per offered task, in offer order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["seq", "task_id", "node_id", "gpus"])
    for p in placements:
        writer.writerow([p.seq, p.task_id, p.node_id or "", ";".join(str(g) for g in p.gpus)])
    return out.getvalue()
