"""Traces for ``federation simulate``: machines and tasks in the column layouts of the Alibaba
``openb`` GPU trace, and the FGD paper's inflated workload. Pure: callers pass file contents.
"""

from __future__ import annotations

import csv
import functools
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from federation.errors import ValidationError
from federation.model import MILLI_PER_GPU as MILLI
from federation.scheduler.fragmentation import TaskShape


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
