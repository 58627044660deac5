"""The queue spec: a fair-share weight and an optional quota (maximum resources in use)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from federation.specs.job import NAME_PATTERN, validate_model


class Quota(BaseModel):
    """The most a queue may hold; a resource left out is not limited (a memory-only quota
    is fine, and a quota without ``gpu`` does not mean zero GPUs)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    cpu: int | None = Field(default=None, ge=0, description="millicores")
    memory: int | None = Field(default=None, ge=0, description="MiB")
    gpu: float | None = Field(default=None, ge=0)


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(default=1.0, gt=0, le=1000)
    quota: Quota | None = None


def validate_queue(data: Any) -> dict[str, Any]:
    spec = validate_model(QueueSpec, data, not_a_mapping="a queue spec must be a mapping")
    if spec.get("quota") is not None:
        # Only the limits given are stored: an absent one is no limit.
        spec["quota"] = {k: v for k, v in spec["quota"].items() if v is not None}
    return spec
