"""What an agent may report about an allocation: typed, size-capped fields only.

Whatever a node reports is stored in the replicated state and sent back on every
``GET /v1/allocations``, by every server: a report must not be able to make those answers
large. Each field has a type and a bound, and an update holds nothing else.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from federation.errors import ValidationError
from federation.specs.job import validate_model

MAX_MESSAGE_CHARS = 4096
MAX_PORTS = 64
MAX_UPDATES = 1000
PortName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,63}$")]
Port = Annotated[int, Field(gt=0, lt=65536)]


class AllocationUpdate(BaseModel):
    """One allocation's client-side fields, as a node reports them."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=128)
    client_status: Literal["pending", "running", "complete", "failed", "lost", "stopped"]
    exit_code: int | None = Field(default=None, ge=-(1 << 31), lt=1 << 31)
    signal: int | None = Field(default=None, ge=0, le=255)
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    ports: dict[PortName, Port] = Field(default_factory=dict, max_length=MAX_PORTS)
    restarts: int = Field(default=0, ge=0, le=1_000_000)
    started_at: float | None = Field(default=None, ge=0, le=1e11)
    finished_at: float | None = Field(default=None, ge=0, le=1e11)
    healthy: bool | None = None


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    updates: list[AllocationUpdate] = Field(min_length=1, max_length=MAX_UPDATES)


def parse_report(body: Any) -> list[dict[str, Any]]:
    """The updates of a status report, each holding only the fields it set (a field left
    out keeps its recorded value)."""
    if not isinstance(body, dict):
        raise ValidationError('expected {"updates": [...]}', field="updates")
    validate_model(StatusReport, body, not_a_mapping='expected {"updates": [...]}')
    # Validated: dump each update with only what the node sent (an absent field is kept).
    return [AllocationUpdate.model_validate(u).model_dump(exclude_unset=True)
            for u in body["updates"]]
