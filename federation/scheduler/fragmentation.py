"""GPU fragmentation model: how much of a node's free GPU the expected workload can still use.

This is the ranking signal for GPU-sharing work, after the fragmentation-gradient idea of Weng
et al. (USENIX ATC'23). A *workload profile* is a set of typical task shapes with their
frequencies. For a node state (free CPU, free milli-GPU per device) the *usable mass* is

    usable(node) = sum over shapes m of  p_m * fits(node, m) * U(node, need_m)

where ``U(node, x)`` is the free milli-GPU held by devices with at least ``x`` free
(``need_m`` is the share for a sharing shape, 1000 for whole-GPU shapes, 0 for CPU-only
shapes) and ``fits`` says whether the shape can run there at all (CPU, one device with the
share, or enough whole free devices). Free GPU that is not usable is fragmented, so
``fragmentation = total_free * sum(p) - usable``. Placing a task lowers the total free GPU by
the same amount on every node, so the best node is the one that loses the *least usable
mass*: ``loss = usable(before) - usable(after)``.

Everything here is vectorised over batches of node states with numpy and has no side effects;
the planner and the ``simulate`` tool share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

MILLI = 1000
"""milli-GPU in one whole device."""


@dataclass(frozen=True)
class TaskShape:
    """The scheduling-relevant shape of one task: CPU and how it asks for GPUs."""

    cpu_milli: int
    num_gpu: int = 0
    gpu_milli_per_gpu: int = 0
    memory_mib: int = 0

    @property
    def is_sharing(self) -> bool:
        return self.num_gpu == 1 and 0 < self.gpu_milli_per_gpu < MILLI

    @property
    def gpu_milli_total(self) -> int:
        if self.num_gpu <= 0:
            return 0
        if self.is_sharing:
            return self.gpu_milli_per_gpu
        return self.num_gpu * MILLI


@dataclass(frozen=True)
class WorkloadProfile:
    """Typical task shapes and their weights, as arrays ready for vectorised scoring."""

    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    need_max: np.ndarray  # a device must have at least this much free (sharing shapes)
    need_full: np.ndarray  # this many fully free devices (whole-GPU shapes)
    weight: np.ndarray
    thresholds: np.ndarray  # distinct per-device needs, used to compute U
    threshold_index: np.ndarray  # for each shape, its column in thresholds

    @property
    def size(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def empty(cls) -> WorkloadProfile:
        """No expected shapes: nothing counts as usable, so ranking by fragmentation is the
        tightest fit alone (the BestFit baseline)."""
        none = np.zeros(0, np.int64)
        return cls(none, none, none, none, np.zeros(0), none, none)


def build_profile(
    shapes: Iterable[TaskShape],
    *,
    gpu_weight_exponent: float = 0.5,
    cpu_only_gpu_equivalent: float = 1.0,
    min_share: float = 0.0,
    with_memory: bool = False,
) -> WorkloadProfile:
    """Profile from observed task shapes (repeats count).

    A shape's weight is its count times ``max(gpus, cpu_only_gpu_equivalent) **
    gpu_weight_exponent`` (``gpus`` in whole devices, shares as fractions), so a positive
    exponent makes the usable mass favour the shapes that ask for more GPU. The defaults (0.5
    and 1.0: a CPU-only shape counts like one GPU) measured best on the openb trace (see
    ``docs/benchmarks-scheduler.md``); exponent 0 gives the paper's plain frequencies.
    Shapes rarer than ``min_share`` of all tasks are left out; weights are normalised to sum
    to 1. Memory is part of the shapes only ``with_memory`` (it seldom binds before CPU or
    GPU and it multiplies the distinct node states to score).
    """
    counts = Counter(s if with_memory else replace(s, memory_mib=0) for s in shapes)
    total = sum(counts.values())
    if total == 0:
        counts = Counter({TaskShape(cpu_milli=0, num_gpu=1, gpu_milli_per_gpu=MILLI): 1})
        total = 1
    kept = [(s, n) for s, n in counts.items() if n / total >= min_share] or list(counts.items())
    kept.sort(key=lambda item: (item[0].num_gpu, item[0].gpu_milli_per_gpu, item[0].cpu_milli))
    raw = [
        n * max(s.gpu_milli_total / MILLI, cpu_only_gpu_equivalent) ** gpu_weight_exponent
        for s, n in kept
    ]
    kept_total = sum(raw)
    cpu = np.array([s.cpu_milli for s, _ in kept], dtype=np.int64)
    mem = np.array([s.memory_mib for s, _ in kept], dtype=np.int64)
    need_max = np.array([s.gpu_milli_per_gpu if s.is_sharing else 0 for s, _ in kept], np.int64)
    need_full = np.array(
        [0 if (s.num_gpu <= 0 or s.is_sharing) else s.num_gpu for s, _ in kept], np.int64
    )
    per_device = np.array(
        [
            0 if s.num_gpu <= 0 else (s.gpu_milli_per_gpu if s.is_sharing else MILLI)
            for s, _ in kept
        ],
        np.int64,
    )
    thresholds, index = np.unique(per_device, return_inverse=True)
    weight = np.array([w / kept_total for w in raw], dtype=np.float64)
    return WorkloadProfile(
        cpu_milli=cpu,
        memory_mib=mem,
        need_max=need_max,
        need_full=need_full,
        weight=weight,
        thresholds=thresholds,
        threshold_index=index.reshape(-1),
    )


def usable_mass(
    profile: WorkloadProfile, cpu_free: np.ndarray, mem_free: np.ndarray, gpu_free: np.ndarray
) -> np.ndarray:
    """Usable milli-GPU of each node state, weighted by the profile.

    ``cpu_free`` and ``mem_free`` have shape (B,), ``gpu_free`` (B, G): free milli-GPU per
    device, 0 for a device slot the node does not have.
    """
    f = gpu_free[:, None, :]
    usable = (f * (f >= profile.thresholds[None, :, None])).sum(axis=2)  # (B, X)
    max_free = gpu_free.max(axis=1) if gpu_free.shape[1] else np.zeros(len(cpu_free), np.int64)
    full = (gpu_free >= MILLI).sum(axis=1)
    fits = (
        (cpu_free[:, None] >= profile.cpu_milli[None, :])
        & (mem_free[:, None] >= profile.memory_mib[None, :])
        & (max_free[:, None] >= profile.need_max[None, :])
        & (full[:, None] >= profile.need_full[None, :])
    )
    return (fits * usable[:, profile.threshold_index]) @ profile.weight


def fragmentation(
    profile: WorkloadProfile, cpu_free: np.ndarray, mem_free: np.ndarray, gpu_free: np.ndarray
) -> np.ndarray:
    """Expected fragmented milli-GPU of each node state (free GPU the profile cannot use)."""
    total = gpu_free.sum(axis=1) * float(profile.weight.sum())
    return total - usable_mass(profile, cpu_free, mem_free, gpu_free)


def placement_loss(
    profile: WorkloadProfile,
    shape: TaskShape,
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    gpu_free: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Usable mass lost by placing ``shape`` on each node state, and which device to use.

    ``gpu_free`` rows must be sorted in descending order. Returns ``(loss, device_free)``:
    ``loss`` is ``inf`` where the shape does not fit; for a sharing shape ``device_free`` is
    the free amount of the device to take (ties go to the fullest device that fits), -1
    otherwise. Whole-GPU shapes take fully free devices, which are interchangeable.
    """
    batch, devices = gpu_free.shape
    cpu_after = cpu_free - shape.cpu_milli
    mem_after = mem_free - shape.memory_mib
    room = (cpu_after >= 0) & (mem_after >= 0)
    no_device = np.full(batch, -1, dtype=np.int64)
    # Before and after states go through one vectorised call.
    if shape.num_gpu <= 0:
        both = usable_mass(
            profile,
            np.concatenate([cpu_free, cpu_after]),
            np.concatenate([mem_free, mem_after]),
            np.concatenate([gpu_free, gpu_free]),
        )
        return np.where(room, both[:batch] - both[batch:], np.inf), no_device
    if not shape.is_sharing:
        k = shape.num_gpu
        after = gpu_free.copy()
        after[:, :k] = 0
        ok = room & ((gpu_free >= MILLI).sum(axis=1) >= k)
        both = usable_mass(
            profile,
            np.concatenate([cpu_free, cpu_after]),
            np.concatenate([mem_free, mem_after]),
            np.concatenate([gpu_free, after]),
        )
        return np.where(ok, both[:batch] - both[batch:], np.inf), no_device
    d = shape.gpu_milli_per_gpu
    # One hypothetical state per (node, device): the share taken from that device.
    hyp = np.repeat(gpu_free[:, None, :], devices, axis=1)  # (B, G, G)
    idx = np.arange(devices)
    hyp[:, idx, idx] -= d
    valid = (gpu_free >= d) & room[:, None]
    both = usable_mass(
        profile,
        np.concatenate([cpu_free, np.repeat(cpu_after, devices)]),
        np.concatenate([mem_free, np.repeat(mem_after, devices)]),
        np.concatenate([gpu_free, np.clip(hyp, 0, None).reshape(batch * devices, devices)]),
    )
    before = both[:batch]
    after = both[batch:].reshape(batch, devices)
    loss = np.where(valid, before[:, None] - after, np.inf)
    best = loss.min(axis=1)
    # Among equally good devices prefer the one with least room (rows sorted descending).
    tie = valid & (loss <= best[:, None] + 1e-9)
    last = devices - 1 - np.argmax(tie[:, ::-1], axis=1)
    device_free = np.where(np.isfinite(best), gpu_free[np.arange(batch), last], -1)
    return best, device_free
