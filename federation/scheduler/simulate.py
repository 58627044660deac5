"""Trace-driven what-if simulation behind ``federation simulate``.

Loads machines and tasks (the column layouts of the Alibaba ``openb`` GPU trace), optionally
builds the FGD paper's inflated workload, offers every task once in order (nothing finishes,
a task that fits nowhere is dropped) and measures allocation. Policies: ``default`` (the
scheduler's own ranking: least loss of usable GPU, see :mod:`federation.scheduler.fragmentation`,
then tightest fit), and the baselines ``bestfit``, ``dotprod`` and ``random``.

Pure: callers pass file contents or parsed rows; no printing, no clock except the elapsed
time of a run, which is reported as a figure.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from federation.errors import ValidationError
from federation.scheduler.fragmentation import (
    MILLI,
    TaskShape,
    WorkloadProfile,
    build_profile,
    placement_loss,
)
from federation.scheduler.ranking import (
    LEFTOVER_CPU_MILLI,
    LEFTOVER_GPU_MILLI,
    fragmentation_cost,
    leftover_score,
)

POLICIES = ("default", "bestfit", "dotprod", "random")

_NORM_CPU = LEFTOVER_CPU_MILLI
_NORM_GPU = LEFTOVER_GPU_MILLI


@dataclass(frozen=True)
class Machine:
    machine_id: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_model: str = ""


@dataclass(frozen=True)
class SimTask:
    task_id: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int = 0
    gpu_milli_per_gpu: int = 0
    gpu_spec: str = ""
    app: str = ""
    max_per_node: int = -1

    @functools.cached_property
    def shape(self) -> TaskShape:
        return TaskShape(
            self.cpu_milli,
            self.num_gpu,
            self.gpu_milli_per_gpu if self.num_gpu else 0,
            self.memory_mib,
        )

    @functools.cached_property
    def gpu_milli(self) -> int:
        return self.shape.gpu_milli_total


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
    elapsed_s: float
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
            "placements_per_s": round(self.placements_per_s, 1),
        }


# --------------------------------------------------------------------------- loading


def _int(row: dict[str, str], *names: str, default: int | None = None) -> int:
    for name in names:
        raw = row.get(name)
        if raw is not None and raw.strip() != "":
            try:
                return int(float(raw))
            except ValueError as exc:
                msg = f"column {name!r}: not a number: {raw!r}"
                raise ValidationError(msg, field=name) from exc
    if default is None:
        raise ValidationError(f"missing column, one of: {', '.join(names)}", field=names[0])
    return default


def _str(row: dict[str, str], *names: str) -> str:
    for name in names:
        raw = row.get(name)
        if raw is not None and raw.strip() != "":
            return raw.strip()
    return ""


def parse_machines(text: str) -> list[Machine]:
    """Machines from CSV text: ``machine_id,cpu_milli,memory_mib,num_gpu,gpu_model`` or the
    raw node list ``sn,cpu_milli,memory_mib,gpu,model``."""
    rows = list(csv.DictReader(io.StringIO(text)))
    machines = []
    for i, row in enumerate(rows):
        mid = _str(row, "machine_id", "sn", "node_id", "name") or f"machine-{i}"
        machines.append(
            Machine(
                machine_id=mid,
                cpu_milli=_int(row, "cpu_milli"),
                memory_mib=_int(row, "memory_mib"),
                num_gpu=_int(row, "num_gpu", "gpu", default=0),
                gpu_model=_str(row, "gpu_model", "model"),
            )
        )
    if not machines:
        raise ValidationError("no machines in the machines file", field="machines")
    return machines


def parse_tasks(text: str) -> list[SimTask]:
    """Tasks from CSV text with the columns of ``tasks.csv`` (or the raw pod list), plus the
    optional ``app`` and ``max_per_node`` columns."""
    rows = list(csv.DictReader(io.StringIO(text)))
    tasks = []
    for i, row in enumerate(rows):
        num_gpu = _int(row, "num_gpu", default=0)
        per_gpu = _int(row, "gpu_milli_per_gpu", "gpu_milli", default=MILLI if num_gpu else 0)
        if num_gpu > 1:
            per_gpu = MILLI
        if num_gpu < 0 or per_gpu < 0 or per_gpu > MILLI:
            raise ValidationError(f"task row {i + 1}: bad GPU request", field="num_gpu")
        tasks.append(
            SimTask(
                task_id=_str(row, "task_id", "name") or f"task-{i}",
                cpu_milli=_int(row, "cpu_milli"),
                memory_mib=_int(row, "memory_mib"),
                num_gpu=num_gpu,
                gpu_milli_per_gpu=per_gpu if num_gpu else 0,
                gpu_spec=_str(row, "gpu_spec"),
                app=_str(row, "app"),
                max_per_node=_int(row, "max_per_node", default=-1),
            )
        )
    return tasks


def inflate(
    tasks: Sequence[SimTask],
    capacity_gpu_milli: int,
    factor: float,
    seed: int,
    *,
    shuffle: bool = True,
) -> list[SimTask]:
    """The FGD paper's workload: the tasks (shuffled with ``seed`` when asked), then tasks drawn
    uniformly with replacement and appended while the total GPU request stays within
    ``factor`` times the cluster's GPU capacity."""
    rng = random.Random(seed)
    base = list(tasks)
    if shuffle:
        rng.shuffle(base)
    if not base:
        return base
    limit = factor * capacity_gpu_milli
    total = sum(t.gpu_milli for t in base)
    out = list(base)
    if not any(t.gpu_milli for t in base):
        return out
    while True:
        extra = base[rng.randrange(len(base))]
        if total + extra.gpu_milli > limit:
            break
        out.append(extra)
        total += extra.gpu_milli
    return out


# --------------------------------------------------------------------------- engine


class Cluster:
    """Mutable free-capacity arrays of a simulated cluster (owned by one run)."""

    def __init__(self, machines: Sequence[Machine]) -> None:
        self.ids = [m.machine_id for m in machines]
        self.n = len(machines)
        self.devices = max(1, max(m.num_gpu for m in machines))
        self.cpu_cap = np.array([m.cpu_milli for m in machines], dtype=np.int64)
        self.mem_cap = np.array([m.memory_mib for m in machines], dtype=np.int64)
        self.gpu_count = np.array([m.num_gpu for m in machines], dtype=np.int64)
        self.models = [m.gpu_model for m in machines]
        self.cpu_free = self.cpu_cap.copy()
        self.mem_free = self.mem_cap.copy()
        self.gpu_free = np.zeros((self.n, self.devices), dtype=np.int64)
        for i, m in enumerate(machines):
            self.gpu_free[i, : m.num_gpu] = MILLI
        self.max_free = self.gpu_free.max(axis=1)
        self.full = (self.gpu_free >= MILLI).sum(axis=1)
        self.gpu_total_free = self.gpu_free.sum(axis=1)
        self._model_masks: dict[str, np.ndarray] = {}
        self._app_counts: dict[str, np.ndarray] = {}

    @property
    def gpu_capacity_milli(self) -> int:
        return int(self.gpu_count.sum()) * MILLI

    def feasible(self, task: SimTask) -> np.ndarray:
        mask = (self.cpu_free >= task.cpu_milli) & (self.mem_free >= task.memory_mib)
        shape = task.shape
        if shape.is_sharing:
            mask &= self.max_free >= shape.gpu_milli_per_gpu
        elif shape.num_gpu > 0:
            mask &= self.full >= shape.num_gpu
        if task.gpu_spec and shape.num_gpu > 0:
            mask &= self._model_mask(task.gpu_spec)
        if task.app and task.max_per_node >= 0:
            mask &= self._app_count(task.app) < task.max_per_node
        return mask

    def _model_mask(self, spec: str) -> np.ndarray:
        if spec not in self._model_masks:
            wanted = {s.strip() for s in spec.split("|") if s.strip()}
            self._model_masks[spec] = np.array([m in wanted for m in self.models], dtype=bool)
        return self._model_masks[spec]

    def _app_count(self, app: str) -> np.ndarray:
        if app not in self._app_counts:
            self._app_counts[app] = np.zeros(self.n, dtype=np.int64)
        return self._app_counts[app]

    def place(self, node: int, task: SimTask, devices: Sequence[int]) -> None:
        self.cpu_free[node] -= task.cpu_milli
        self.mem_free[node] -= task.memory_mib
        shape = task.shape
        per = shape.gpu_milli_per_gpu if shape.is_sharing else MILLI
        for d in devices:
            self.gpu_free[node, d] -= per
        row = self.gpu_free[node]
        self.max_free[node] = row.max()
        self.full[node] = int((row >= MILLI).sum())
        self.gpu_total_free[node] = int(row.sum())
        if task.app and task.max_per_node >= 0:
            self._app_count(task.app)[node] += 1


def _whole_devices(cluster: Cluster, node: int, k: int) -> tuple[int, ...]:
    free = np.flatnonzero(cluster.gpu_free[node] >= MILLI)
    return tuple(int(i) for i in free[:k])


def _tightest_device(cluster: Cluster, node: int, share: int) -> int:
    row = cluster.gpu_free[node]
    room = np.where(row >= share, row, np.iinfo(np.int64).max)
    return int(np.argmin(room))


def _devices_for(cluster: Cluster, node: int, task: SimTask) -> tuple[int, ...]:
    shape = task.shape
    if shape.num_gpu <= 0:
        return ()
    if shape.is_sharing:
        return (_tightest_device(cluster, node, shape.gpu_milli_per_gpu),)
    return _whole_devices(cluster, node, shape.num_gpu)


class _Policy:
    name = ""

    def choose(
        self, cluster: Cluster, task: SimTask, nodes: np.ndarray
    ) -> tuple[int, tuple[int, ...]]:
        raise NotImplementedError

    def placed(self, cluster: Cluster, node: int) -> None:
        return None


def _bestfit_score(cluster: Cluster, task: SimTask, nodes: np.ndarray) -> np.ndarray:
    cpu_left = cluster.cpu_free[nodes] - task.cpu_milli
    gpu_left = cluster.gpu_total_free[nodes] - task.gpu_milli
    return leftover_score(cpu_left, gpu_left)


class BestFit(_Policy):
    """Least normalised leftover CPU and GPU; a sharing task takes the fullest device that fits."""

    name = "bestfit"

    def choose(self, cluster, task, nodes):
        node = int(nodes[np.argmin(_bestfit_score(cluster, task, nodes))])
        return node, _devices_for(cluster, node, task)


class DotProd(_Policy):
    """Tetris-style alignment: the node whose free (CPU, GPU) vector, normalised by the largest
    node, has the smallest dot product with the task's request."""

    name = "dotprod"

    def choose(self, cluster, task, nodes):
        req_cpu = task.cpu_milli / _NORM_CPU
        req_gpu = task.gpu_milli / _NORM_GPU
        dot = (cluster.cpu_free[nodes] / _NORM_CPU) * req_cpu + (
            cluster.gpu_total_free[nodes] / _NORM_GPU
        ) * req_gpu
        node = int(nodes[np.argmin(dot)])
        return node, _devices_for(cluster, node, task)


class RandomFit(_Policy):
    """A uniformly random feasible node and a random fitting device."""

    name = "random"

    def __init__(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, cluster, task, nodes):
        node = int(nodes[self.rng.integers(len(nodes))])
        shape = task.shape
        if shape.is_sharing:
            fit = np.flatnonzero(cluster.gpu_free[node] >= shape.gpu_milli_per_gpu)
            return node, (int(fit[self.rng.integers(len(fit))]),)
        if shape.num_gpu > 0:
            fit = np.flatnonzero(cluster.gpu_free[node] >= MILLI)
            picked = self.rng.choice(fit, size=shape.num_gpu, replace=False)
            return node, tuple(sorted(int(i) for i in picked))
        return node, ()


class LeastFragmentation(_Policy):
    """The scheduler's default ranking for GPU work (:func:`ranking.fragmentation_cost`): least
    loss of usable GPU under the workload profile plus a small pull to the tightest fit.

    Losses are memoised per (node state, task shape): nodes in identical states (all empty
    nodes of one type, for instance) are scored once.
    """

    name = "default"

    def __init__(self, cluster: Cluster, profile: WorkloadProfile) -> None:
        self.profile = profile
        self.memory_aware = bool(profile.memory_mib.any())
        self._stripped: dict[TaskShape, TaskShape] = {}
        self._state_ids: dict[tuple[int, ...], int] = {}
        self._state_cpu: list[int] = []
        self._state_mem: list[int] = []
        self._state_gpu: list[np.ndarray] = []
        self._shape_ids: dict[TaskShape, int] = {}
        self._loss = np.full((1024, 16), np.nan)
        self._device_free = np.full((1024, 16), -1, dtype=np.int64)
        self.node_state = np.array([self._intern(cluster, i) for i in range(cluster.n)], np.int64)

    def _intern(self, cluster: Cluster, node: int) -> int:
        gpu = np.sort(cluster.gpu_free[node])[::-1]
        mem = int(cluster.mem_free[node]) if self.memory_aware else 0
        key = (int(cluster.cpu_free[node]), mem, *gpu.tolist())
        sid = self._state_ids.get(key)
        if sid is None:
            sid = len(self._state_cpu)
            self._state_ids[key] = sid
            self._state_cpu.append(key[0])
            self._state_mem.append(mem)
            self._state_gpu.append(gpu)
            if sid >= self._loss.shape[0]:
                self._grow(rows=True)
        return sid

    def _grow(self, *, rows: bool) -> None:
        r, c = self._loss.shape
        shape = (r * 2, c) if rows else (r, c * 2)
        loss = np.full(shape, np.nan)
        dev = np.full(shape, -1, dtype=np.int64)
        loss[:r, :c] = self._loss
        dev[:r, :c] = self._device_free
        self._loss, self._device_free = loss, dev

    def _shape_id(self, shape: TaskShape) -> int:
        sid = self._shape_ids.get(shape)
        if sid is None:
            sid = len(self._shape_ids)
            self._shape_ids[shape] = sid
            if sid >= self._loss.shape[1]:
                self._grow(rows=False)
        return sid

    def choose(self, cluster, task, nodes):
        shape = task.shape
        if not self.memory_aware:
            stripped = self._stripped.get(shape)
            if stripped is None:
                stripped = self._stripped[shape] = dataclasses.replace(shape, memory_mib=0)
            shape = stripped
        col = self._shape_id(shape)
        states = self.node_state[nodes]
        loss = self._loss[states, col]
        unknown = np.isnan(loss)
        if unknown.any():
            todo = np.unique(states[unknown])
            cpu = np.array([self._state_cpu[s] for s in todo], dtype=np.int64)
            mem = np.array([self._state_mem[s] for s in todo], dtype=np.int64)
            gpu = np.stack([self._state_gpu[s] for s in todo])
            todo_loss, todo_dev = placement_loss(self.profile, shape, cpu, mem, gpu)
            self._loss[todo, col] = todo_loss
            self._device_free[todo, col] = todo_dev
            loss = self._loss[states, col]
        # The planner's GPU ranking: usable GPU lost, plus a little leftover.
        cost = fragmentation_cost(loss, _bestfit_score(cluster, task, nodes))
        node = int(nodes[np.argmin(cost)])
        if shape.is_sharing:
            want = self._device_free[self.node_state[node], col]
            row = cluster.gpu_free[node]
            return node, (int(np.flatnonzero(row == want)[0]),)
        return node, _devices_for(cluster, node, task)

    def placed(self, cluster, node):
        self.node_state[node] = self._intern(cluster, node)


def make_policy(name: str, cluster: Cluster, profile: WorkloadProfile, seed: int | None) -> _Policy:
    if name == "default":
        return LeastFragmentation(cluster, profile)
    if name == "bestfit":
        return BestFit()
    if name == "dotprod":
        return DotProd()
    if name == "random":
        return RandomFit(seed)
    raise ValidationError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}", field="policy")


# --------------------------------------------------------------------------- run


def _interpolate_at(xs: np.ndarray, ys: np.ndarray, x: float) -> float | None:
    if len(xs) == 0 or xs[-1] < x:
        return None
    return float(np.interp(x, xs, ys))


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
    """Offer each task once, in order, to the cluster built from ``machines``.

    With ``inflation`` the workload is the FGD paper's (see :func:`inflate`); with only
    ``shuffle`` the tasks are shuffled with ``seed``. The default policy's workload profile is
    built from ``profile_tasks`` (default: the tasks as given, before inflation) unless a
    ``profile`` is given.
    """
    cluster = Cluster(machines)
    rng_seed = 0 if seed is None else seed
    if inflation is not None:
        if inflation <= 0:
            raise ValidationError("inflation must be positive", field="inflation")
        workload = inflate(tasks, cluster.gpu_capacity_milli, inflation, rng_seed, shuffle=shuffle)
    elif shuffle:
        workload = list(tasks)
        random.Random(rng_seed).shuffle(workload)
    else:
        workload = list(tasks)
    if profile is None:
        source = profile_tasks if profile_tasks is not None else tasks
        profile = build_profile(t.shape for t in source)
    chooser = make_policy(policy, cluster, profile, seed)

    capacity = max(cluster.gpu_capacity_milli, 1)
    arrived = np.zeros(len(workload))
    allocated = np.zeros(len(workload))
    placements: list[Placement] = []
    arrived_milli = 0
    allocated_milli = 0
    placed = 0
    start = time.perf_counter()
    for seq, task in enumerate(workload):
        nodes = np.flatnonzero(cluster.feasible(task))
        if len(nodes):
            node, devices = chooser.choose(cluster, task, nodes)
            cluster.place(node, task, devices)
            chooser.placed(cluster, node)
            placements.append(Placement(seq, task.task_id, cluster.ids[node], devices))
            allocated_milli += task.gpu_milli
            placed += 1
        else:
            placements.append(Placement(seq, task.task_id, None, ()))
        arrived_milli += task.gpu_milli
        arrived[seq] = arrived_milli / capacity
        allocated[seq] = allocated_milli / capacity
    elapsed = time.perf_counter() - start

    at_100 = _interpolate_at(arrived, allocated, 1.0)
    curve = []
    final = float(arrived[-1]) if len(arrived) else 0.0
    for pct in range(10, int(final * 100) + 1, 10):
        value = _interpolate_at(arrived, allocated, pct / 100)
        if value is not None:
            curve.append((float(pct), 100 * value))
    if len(arrived) and (not curve or curve[-1][0] < 100 * final - 1e-9):
        curve.append((100 * final, 100 * float(allocated[-1])))
    cpu_cap = max(int(cluster.cpu_cap.sum()), 1)
    mem_cap = max(int(cluster.mem_cap.sum()), 1)
    return SimResult(
        policy=policy,
        seed=seed,
        inflation=inflation,
        offered=len(workload),
        placed=placed,
        dropped=len(workload) - placed,
        cpu_allocation=1 - cluster.cpu_free.sum() / cpu_cap,
        memory_allocation=1 - cluster.mem_free.sum() / mem_cap,
        gpu_allocation=allocated_milli / capacity,
        unallocated_gpu_pct_at_100=None if at_100 is None else 100 * (1 - at_100),
        unallocated_gpus_at_100=None if at_100 is None else (1 - at_100) * capacity / MILLI,
        curve=curve,
        elapsed_s=elapsed,
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
