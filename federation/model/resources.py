"""Resource amounts: what one instance asks for, and totals of many.

An instance asks for CPU (millicores), memory (MiB) and GPUs two ways: ``gpu`` whole
devices, or ``gpu_share_milli`` (1..999) of one device, as in the Alibaba GPU-sharing trace.
Those two cannot be mixed in one ask, but a *total* of asks (a queue's usage, a node's
allocation, a quota) can hold any number of milli-GPU: 0.46 + 0.46 + 0.46 is 1.38 GPUs,
which is no single ask. So a sum of :class:`Resources` is a :class:`ResourceTotals`, with
GPUs in milli-GPU only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.errors import ValidationError

MILLI_PER_GPU = 1000


@dataclass(frozen=True)
class ResourceTotals:
    """A sum of resource asks: CPU in millicores, memory in MiB, GPU in milli-GPU."""

    cpu_milli: int = 0
    memory_mib: int = 0
    gpu_milli: int = 0

    def __add__(self, other: Resources | ResourceTotals) -> ResourceTotals:
        return ResourceTotals(
            self.cpu_milli + other.cpu_milli,
            self.memory_mib + other.memory_mib,
            self.gpu_milli + other.gpu_milli,
        )

    __radd__ = __add__

    def within(self, limit: ResourceTotals) -> bool:
        return (
            self.cpu_milli <= limit.cpu_milli
            and self.memory_mib <= limit.memory_mib
            and self.gpu_milli <= limit.gpu_milli
        )

    @property
    def is_zero(self) -> bool:
        return not (self.cpu_milli or self.memory_mib or self.gpu_milli)


@dataclass(frozen=True)
class Resources:
    """What one instance asks for: CPU in millicores, memory in MiB, whole GPUs or a share
    of one. Adding two gives a :class:`ResourceTotals`."""

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

    @property
    def gpu_per_device_milli(self) -> int:
        """Milli-GPU taken on each device used: the share, or a whole device."""
        return self.gpu_share_milli or MILLI_PER_GPU

    @property
    def devices_wanted(self) -> int:
        """How many GPU devices one instance uses (a share uses one)."""
        return self.gpu or (1 if self.gpu_share_milli else 0)

    def total(self) -> ResourceTotals:
        return ResourceTotals(self.cpu_milli, self.memory_mib, self.gpu_milli)

    def __add__(self, other: Resources | ResourceTotals) -> ResourceTotals:
        return self.total() + other

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


def gpu_per_device_milli(resources: Mapping[str, Any]) -> int:
    """Milli-GPU an allocation record takes on each of its devices (a share, or a whole one)."""
    gpu = float(resources.get("gpu", 0) or 0)
    return int(round(gpu * MILLI_PER_GPU)) if 0 < gpu < 1 else MILLI_PER_GPU


def resources_of_record(record: Mapping[str, Any]) -> Resources:
    """The ask of an allocation record (``resources``: ``cpu_milli``, ``memory_mib``,
    ``gpu`` as devices or a fraction below 1 for a share)."""
    res = record.get("resources") or {}
    gpu = float(res.get("gpu", 0) or 0)
    share = int(round(gpu * MILLI_PER_GPU)) if 0 < gpu < 1 else 0
    return _resources(int(res.get("cpu_milli", 0)), int(res.get("memory_mib", 0)),
                      0 if share else int(gpu), share)


@functools.lru_cache(maxsize=4096)
def _resources(cpu_milli: int, memory_mib: int, gpu: int, gpu_share_milli: int) -> Resources:
    # Allocations come in few shapes: one immutable value per shape, checked once.
    return Resources(cpu_milli, memory_mib, gpu, gpu_share_milli)
