"""The pool spec: one capacity source (a provider in a region) and the rules for buying from it.

Validated at the edge (API, CLI) with clear per-field messages; stored as a plain dict.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from federation.errors import ValidationError
from federation.specs.duration import parse_duration

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,61}[A-Za-z0-9])?$")
# Providers whose instances live in a cloud region: a pool of theirs must name one.
_REGIONAL = frozenset({"aws", "gcp"})


class Requirements(BaseModel):
    """Instance shapes a pool may buy when it does not list ``instance_types`` by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cpu_milli: int = Field(0, ge=0)
    max_cpu_milli: int | None = Field(None, ge=1)
    min_memory_mib: int = Field(0, ge=0)
    max_memory_mib: int | None = Field(None, ge=1)
    min_gpu: int = Field(0, ge=0)
    max_gpu: int | None = Field(None, ge=0)
    families: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ranges(self) -> Requirements:
        for lo, hi in (
            ("min_cpu_milli", "max_cpu_milli"),
            ("min_memory_mib", "max_memory_mib"),
            ("min_gpu", "max_gpu"),
        ):
            top = getattr(self, hi)
            if top is not None and getattr(self, lo) > top:
                raise ValueError(f"{lo} ({getattr(self, lo)}) is greater than {hi} ({top})")
        return self

    def admits(self, cpu_milli: int, memory_mib: int, gpu: int, name: str) -> bool:
        """Whether a shape satisfies these requirements."""
        if cpu_milli < self.min_cpu_milli or memory_mib < self.min_memory_mib:
            return False
        if gpu < self.min_gpu:
            return False
        if self.max_cpu_milli is not None and cpu_milli > self.max_cpu_milli:
            return False
        if self.max_memory_mib is not None and memory_mib > self.max_memory_mib:
            return False
        if self.max_gpu is not None and gpu > self.max_gpu:
            return False
        if self.families:
            family = re.split(r"[.\-]", name, maxsplit=1)[0]
            return family in self.families
        return True


class PoolSpec(BaseModel):
    """A pool as in DESIGN.md. ``scale_down_idle`` is held in seconds.

    ``scale_down_utilization`` (a fraction of a node's CPU, memory and GPU, off when unset)
    lets the autoscaler also release nodes that are busy but under that share for
    ``scale_down_idle``, when their services fit on other nodes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str
    region: str | None = None
    zones: list[str] = Field(default_factory=list)
    min_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(10, ge=0)
    instance_types: list[str] | None = None
    requirements: Requirements | None = None
    spot: Literal["never", "prefer", "only"] = "never"
    preference: int = Field(10, ge=0, le=1000)
    scale_down_idle: float = 300.0
    scale_down_utilization: float | None = None
    max_price_per_hour: float | None = Field(None, gt=0)
    labels: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
            )
        return v

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        if not _PROVIDER.match(v):
            raise ValueError("must be a provider name such as local, onprem, aws or gcp")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", v):
            raise ValueError(f"{v!r} is not a region name")
        return v

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        for zone in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", zone):
                raise ValueError(f"{zone!r} is not a zone name")
        if len(set(v)) != len(v):
            raise ValueError("zones must not repeat")
        return v

    @field_validator("instance_types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("instance_types must not be empty; omit it to use requirements")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name):
                raise ValueError(f"{name!r} is not an instance type name")
        if len(set(v)) != len(v):
            raise ValueError("instance_types must not repeat")
        return v

    @field_validator("scale_down_idle", mode="before")
    @classmethod
    def _idle(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("scale_down_utilization", mode="before")
    @classmethod
    def _utilization(cls, v: Any) -> float | None:
        if v is None:
            return None
        fraction: float | None = None
        if isinstance(v, str) and v.strip().endswith("%"):
            try:
                fraction = float(v.strip()[:-1]) / 100
            except ValueError:
                fraction = None
        elif isinstance(v, int | float) and not isinstance(v, bool):
            fraction = float(v)
        if fraction is None or math.isnan(fraction) or not 0 <= fraction <= 1:
            raise ValueError(
                f"{v!r} is not a fraction from 0 to 1 (e.g. 0.5 or \"50%\"): the share of a "
                "node's CPU, memory and GPU under which it may be released"
            )
        return fraction

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r} must be 1-63 characters of letters, digits and '_.-/'"
                )
            if len(value) > 255:
                raise ValueError(f"label {key!r} is longer than 255 characters")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PoolSpec:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) is greater than max_nodes ({self.max_nodes})"
            )
        if self.instance_types is not None and self.requirements is not None:
            raise ValueError("give either instance_types or requirements, not both")
        if self.provider in _REGIONAL and not self.region:
            raise ValueError(f"a {self.provider} pool needs a region")
        if self.zones and self.region and self.provider in _REGIONAL:
            for zone in self.zones:
                if not zone.startswith(self.region):
                    raise ValueError(f"zone {zone!r} is not in region {self.region!r}")
        return self


def parse_pool(data: Any) -> PoolSpec:
    """Validate a pool spec (a dict from YAML/JSON); errors become ``ValidationError``."""
    if isinstance(data, PoolSpec):
        return data
    if not isinstance(data, dict):
        raise ValidationError("a pool spec must be a mapping")
    try:
        return PoolSpec.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        text = f"{loc}: {msg}" if loc else msg
        raise ValidationError(f"invalid pool spec: {text}", field=loc or None) from exc
