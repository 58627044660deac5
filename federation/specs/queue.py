"""The queue spec: a fair-share weight and an optional quota (maximum resources in use)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from federation.errors import ValidationError
from federation.specs.job import NAME_PATTERN, field_path


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    cpu: int = Field(ge=0, description="millicores")
    memory: int = Field(ge=0, description="MiB")
    gpu: float = Field(default=0, ge=0)


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(default=1.0, gt=0, le=1000)
    quota: Quota | None = None


def validate_queue(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError("a queue spec must be a mapping")
    try:
        return QueueSpec.model_validate(data).model_dump(mode="json")
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False)[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        raise ValidationError(message, field=field_path(tuple(first["loc"])) or None) from None
