"""The job spec: what a user submits, validated field by field before anything is written.

A spec is parsed from YAML or JSON into pydantic models and stored as the plain dict that
``JobSpec.model_dump(mode="json")`` gives, so the replicated state never holds model objects.
Every rejection names the offending field in the path form users see in their file
(``groups[0].count``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from federation.errors import ValidationError
from federation.model.constraints import (
    NODE_ATTRIBUTES,
    compile_regex,
    is_known_attribute,
)
from federation.scheduler.periodic import check_schedule
from federation.specs.documents import decode
from federation.specs.duration import parse_duration
from federation.specs.namespace import DEFAULT_NAMESPACE, NAMESPACE_PATTERN
from federation.specs.suggest import did_you_mean

ID_PATTERN = r"^[a-z0-9-]{1,63}$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ENV_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_COUNT = 10_000

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Resources(_Strict):
    cpu: int = Field(gt=0, le=1_000_000, description="millicores")
    memory: int = Field(gt=0, le=16_777_216, description="MiB")
    gpu: float = Field(
        default=0, ge=0, le=64, description="devices; a fraction asks for a share of one GPU")

    @field_validator("gpu")
    @classmethod
    def _whole_or_share(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError("more than one GPU must be a whole number of devices")
        return gpu


class Constraint(_Strict):
    attribute: str
    operator: Literal["=", "!=", "in", "not_in", "regex", "exists", "not_exists"]
    value: str | list[str] | None = None

    @field_validator("attribute")
    @classmethod
    def _known_attribute(cls, attribute: str) -> str:
        if not is_known_attribute(attribute):
            known = ", ".join(NODE_ATTRIBUTES)
            raise ValueError(f"unknown attribute {attribute!r}: use one of {known} or labels.<key>")
        return attribute

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Constraint:
        op, value = self.operator, self.value
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise _FieldError("value", f"operator {op!r} needs a non-empty list as value")
        elif op in ("exists", "not_exists"):
            if value is not None:
                raise _FieldError("value", f"operator {op!r} takes no value")
        else:
            if not isinstance(value, str):
                raise _FieldError("value", f"operator {op!r} needs a single string as value")
            if op == "regex":
                try:
                    compile_regex(value)  # linear-time RE2, bounded in size
                except ValidationError as exc:
                    raise _FieldError("value", exc.message) from exc
        return self


class RestartPolicy(_Strict):
    attempts: int = Field(default=2, ge=0, le=100)
    delay: str = "2s"

    @field_validator("delay", mode="before")
    @classmethod
    def _valid_delay(cls, delay: Any) -> str:
        parse_duration(delay)
        return str(delay)


class ReschedulePolicy(_Strict):
    """After its agent gave up restarting it (``restart``), a failed batch task is placed
    again up to ``attempts`` times; services are always placed again. A replacement waits
    ``delay`` after the failure, doubled for each failure in a row, at most ``max_delay``
    (a copy that ran at least ``max_delay`` before failing starts again from ``delay``)."""

    attempts: int = Field(default=1, ge=0, le=100)
    delay: str = "5s"
    max_delay: str = "5m"

    @field_validator("delay", "max_delay", mode="before")
    @classmethod
    def _valid_delays(cls, value: Any) -> str:
        parse_duration(value)
        return str(value)

    @model_validator(mode="after")
    def _max_not_below_delay(self) -> ReschedulePolicy:
        if parse_duration(self.max_delay) < parse_duration(self.delay):
            raise _FieldError("max_delay", f"must be at least delay ({self.delay})")
        return self


class HealthCheck(_Strict):
    """A service health check: ``failures`` consecutive failures after ``grace`` make the
    task unhealthy, and the agent restarts it."""

    type: Literal["http", "tcp", "command"]
    port: str | None = Field(default=None, description="named port of the group (http, tcp)")
    path: str = Field(default="/", pattern=r"^/", description="http only")
    command: list[Annotated[str, Field(min_length=1)]] | None = None
    interval: str = "10s"
    timeout: str = "2s"
    grace: str = "10s"
    failures: int = Field(default=3, ge=1, le=100)

    @field_validator("interval", "timeout", "grace", mode="before")
    @classmethod
    def _valid_durations(cls, value: Any) -> str:
        parse_duration(value)
        return str(value)

    @model_validator(mode="after")
    def _fields_for_type(self) -> HealthCheck:
        if self.type in ("http", "tcp") and not self.port:
            raise _FieldError("port", f"a {self.type} check needs the name of a port")
        if self.type == "command" and not self.command:
            raise _FieldError("command", "a command check needs a command")
        return self


class Task(_Strict):
    driver: Literal["exec", "docker"] = "exec"
    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    env: dict[Annotated[str, Field(pattern=ENV_KEY_PATTERN)], str] = Field(default_factory=dict)
    image: str | None = None
    kill_timeout: str = "5s"
    health: HealthCheck | None = None

    @field_validator("kill_timeout", mode="before")
    @classmethod
    def _valid_kill_timeout(cls, kill_timeout: Any) -> str:
        parse_duration(kill_timeout)
        return str(kill_timeout)

    @model_validator(mode="after")
    def _image_for_docker(self) -> Task:
        if self.driver == "docker" and not self.image:
            raise ValueError("the docker driver needs an image")
        return self


class UpdatePolicy(_Strict):
    max_parallel: int = Field(default=1, ge=1, le=MAX_COUNT)


class Group(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    count: int = Field(default=1, ge=1, le=MAX_COUNT)
    gang: bool = False
    resources: Resources
    constraints: list[Constraint] = Field(default_factory=list)
    spread: str | None = None
    distinct_hosts: bool = False
    max_per_node: int | None = Field(default=None, ge=1)
    ports: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]] = Field(
        default_factory=list
    )
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    reschedule: ReschedulePolicy = Field(default_factory=ReschedulePolicy)
    task: Task

    @field_validator("spread")
    @classmethod
    def _spread_attribute(cls, spread: str | None) -> str | None:
        if spread is not None and not is_known_attribute(spread):
            raise ValueError(f"cannot spread over unknown attribute {spread!r}")
        return spread

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, ports: list[str]) -> list[str]:
        if len(set(ports)) != len(ports):
            raise ValueError("port names must be unique")
        return ports

    @model_validator(mode="after")
    def _health_port_declared(self) -> Group:
        health = self.task.health
        if health is not None and health.port is not None and health.port not in self.ports:
            raise _FieldError("task.health.port", f"no port named {health.port!r} in ports")
        return self


class JobSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    namespace: str = Field(default=DEFAULT_NAMESPACE, pattern=NAMESPACE_PATTERN, max_length=63,
                           description="DNS-1123 label; the id is unique within it")
    type: Literal["service", "batch"]
    priority: int = Field(default=50, ge=0, le=100)
    queue: str = Field(default="default", pattern=NAME_PATTERN)
    schedule: str | None = None
    prohibit_overlap: bool = True
    update: UpdatePolicy = Field(default_factory=UpdatePolicy)
    depends_on: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(default_factory=list)
    groups: list[Group] = Field(min_length=1, max_length=100)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, schedule: str | None) -> str | None:
        if schedule is not None:
            # Valid syntax that never fires (``0 0 31 2 *``) is refused too: the next tick
            # must exist within the horizon the dispatcher searches.
            check_schedule(schedule, time.time())
        return schedule

    @model_validator(mode="after")
    def _batch_only_fields(self) -> JobSpec:
        if self.type != "batch":
            if self.schedule is not None:
                raise _FieldError("schedule", "only batch jobs can have a schedule")
            if self.depends_on:
                raise _FieldError("depends_on", "only batch jobs can depend on other jobs")
            for i, group in enumerate(self.groups):
                if group.gang:
                    raise _FieldError(f"groups[{i}].gang", "only batch groups can be gangs")
        if self.id in self.depends_on:
            raise _FieldError("depends_on", "a job cannot depend on itself")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise _FieldError("depends_on", "dependencies must be unique")
        seen: set[str] = set()
        for i, group in enumerate(self.groups):
            if group.name in seen:
                raise _FieldError(f"groups[{i}].name", f"duplicate group name {group.name!r}")
            seen.add(group.name)
        return self


class _FieldError(ValueError):
    """A cross-field rule broken at a known field (pydantic would blame the whole model)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "constrained-str", "constrained-int"}


def _is_type_tag(part: str) -> bool:
    """pydantic names the union member it tried in an error location (``list[str]``)."""
    return part in _TYPE_TAGS or "[" in part or part.startswith("function-")


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('groups', 0, 'count')`` → ``groups[0].count``."""
    path = ""
    for part in loc:
        if part == "[key]" or (isinstance(part, str) and _is_type_tag(part)):
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _translate(exc: PydanticValidationError, model: type[BaseModel] | None = None
               ) -> ValidationError:
    """The first problem as the error's field and message, and every problem in
    ``errors`` (so a user fixes them all at once). An unknown field comes first, since a
    misspelled key is also why the real one is "required", and it names the closest
    field the model knows."""
    problems = [_problem(e, model) for e in exc.errors(include_url=False)]
    problems.sort(key=lambda p: not p[2])  # unknown fields first, order kept otherwise
    unique: list[tuple[str | None, str]] = []
    for field, message, _ in problems:
        if (field, message) not in unique:
            unique.append((field, message))
    field, message = unique[0]
    if len(unique) == 1:
        return ValidationError(message, field=field)
    return ValidationError(message, field=field,
                           errors=[{"field": f, "message": m} for f, m in unique])


def _problem(error: Any, model: type[BaseModel] | None) -> tuple[str | None, str, bool]:
    """``(field, message, is an unknown field)`` of one pydantic error."""
    loc = tuple(part for part in error["loc"]
                if part not in ("function-after", "function-before"))
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        # The rule was checked on an enclosing model: its field is relative to that model.
        base = field_path(loc)
        return (f"{base}.{ctx_error.field}" if base else ctx_error.field,
                ctx_error.message, False)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        known = _fields_at(model, loc[:-1]) if model is not None else []
        return field_path(loc) or None, f"unknown field {name}{did_you_mean(name, known)}", True
    return field_path(loc) or None, message, False


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model`` (for suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or part == "[key]" or (
                isinstance(part, str) and _is_type_tag(part)):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None) or {}
    return [info.alias or name for name, info in fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``list[X]``, ``X | None``, ``dict[str, X]`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_model(model: type[BaseModel], data: Any, *, not_a_mapping: str) -> dict[str, Any]:
    """Validate ``data`` against ``model``; its normalised plain-dict form, or the first
    problem as a ValidationError naming the field (``not_a_mapping`` when it is not a dict)."""
    if not isinstance(data, dict):
        raise ValidationError(not_a_mapping)
    try:
        return model.model_validate(data).model_dump(mode="json")
    except PydanticValidationError as exc:
        raise _translate(exc, model) from None


def validate_job(data: Any) -> dict[str, Any]:
    """Validate a decoded spec; return its normalised plain-dict form or raise ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError("a job spec must be a mapping")
    if "apiVersion" in data and "kind" in data:
        raise ValidationError(
            "a Kubernetes manifest is not a federation job spec: submit it to /v1/jobs or "
            "/k8s, which translate it", field="apiVersion")
    return validate_model(JobSpec, data, not_a_mapping="a job spec must be a mapping")


def parse_document(text: str | bytes, *, content_type: str = "") -> Any:
    """Decode a YAML or JSON document within the default bounds (see
    ``federation.specs.documents``: the one decoder of the project)."""
    return decode(text, content_type=content_type)
