"""Request bodies of the agent protocol, validated like job specs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from federation.errors import ValidationError
from federation.specs.job import validate_model as validate_spec_model

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
_LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu_milli: int = Field(gt=0, le=100_000_000)
    memory_mib: int = Field(gt=0, le=1 << 40)
    gpu: int = Field(default=0, ge=0, le=1024)


class NodeRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(pattern=_NAME)
    pool: str = Field(default="default", pattern=_NAME)
    provider: str = Field(default="onprem", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    region: str = Field(default="", max_length=63)
    zone: str = Field(default="", max_length=63)
    rack: str = Field(default="", max_length=63)
    instance_type: str = Field(default="", max_length=63)
    instance_id: str = Field(default="", max_length=128)
    # The member Kubernetes cluster of a node its connector registers (provider kubernetes).
    cluster: str = Field(default="", max_length=63)
    price_per_hour: float = Field(default=0.0, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    capacity: Capacity
    # The agent's own endpoint (logs), checked by federation.api.agent_address.
    http_address: str = Field(default="", max_length=300)

    def model_post_init(self, context: Any) -> None:
        import re

        for key, value in self.labels.items():
            if not re.match(_LABEL_KEY, key):
                raise ValidationError(f"invalid label key {key!r}", field=f"labels.{key}")
            if len(value) > 253:
                raise ValidationError("label values are at most 253 characters",
                                      field=f"labels.{key}")


def validate_model(model: type[BaseModel], data: Any) -> dict[str, Any]:
    return validate_spec_model(model, data, not_a_mapping="the body must be a JSON object")
