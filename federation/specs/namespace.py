"""Namespaces: every job lives in one, and a job id is unique within its namespace. Pure.

The replicated state keys a job by ``job_key(namespace, id)``: the bare id in the ``default``
namespace (so every record, snapshot and allocation written before namespaces existed keeps
its meaning) and ``<namespace>/<id>`` elsewhere. A namespace is a DNS-1123 label and an id
holds no ``/``, so the key is unambiguous. Inside the state a spec's ``id`` and
``depends_on`` hold keys (the scheduler, the periodic dispatcher and allocations then treat
them as opaque ids); at the edges ``to_internal`` and ``to_external`` translate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from federation.errors import ValidationError

DEFAULT_NAMESPACE = "default"
ALL_NAMESPACES = "*"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
MAX_NAMESPACE_LENGTH = 63


def is_namespace(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAMESPACE_LENGTH and bool(
        _NAMESPACE.match(name))


def check_namespace(name: object, field: str = "namespace") -> str:
    """The namespace, or a ValidationError naming ``field`` when it is not a DNS-1123 label."""
    if not is_namespace(name):
        raise ValidationError(
            f"namespace {name!r} must be a DNS-1123 label: at most 63 characters of a-z, 0-9 "
            "and '-', starting and ending with a letter or digit", field=field)
    return str(name)


def job_key(namespace: str, job_id: str) -> str:
    """The state key of job ``job_id`` in ``namespace``."""
    return job_id if namespace == DEFAULT_NAMESPACE else f"{namespace}/{job_id}"


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, id)`` of a state key."""
    namespace, sep, job_id = key.partition("/")
    return (namespace, job_id) if sep else (DEFAULT_NAMESPACE, key)


def namespace_of(spec: Mapping[str, Any]) -> str:
    """The namespace a stored spec belongs to (specs stored before namespaces: ``default``)."""
    return str(spec.get("namespace") or DEFAULT_NAMESPACE)


def to_internal(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A validated user spec (local ids) as the state stores it (keys)."""
    namespace = namespace_of(spec)
    return {**spec, "namespace": namespace, "id": job_key(namespace, spec["id"]),
            "depends_on": [job_key(namespace, d) for d in spec.get("depends_on") or []]}


def to_external(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A stored spec as users see it: local ids and an explicit namespace."""
    namespace, job_id = split_key(spec["id"])
    return {**spec, "namespace": namespace, "id": job_id,
            "depends_on": [split_key(d)[1] for d in spec.get("depends_on") or []]}


def key_consistent(spec: Mapping[str, Any]) -> bool:
    """Whether a stored spec's key agrees with its namespace field (and its dependencies
    stay inside it): the state machine refuses any other."""
    key = spec.get("id")
    if not isinstance(key, str):
        return False
    namespace = namespace_of(spec)
    if split_key(key)[0] != namespace or not is_namespace(namespace):
        return False
    return all(isinstance(d, str) and split_key(d)[0] == namespace
               for d in spec.get("depends_on") or [])


def read_scope(namespace: str | None) -> str | None:
    """The namespace a read covers: None for all (``*``), ``default`` when not given."""
    if namespace is None or namespace == "":
        return DEFAULT_NAMESPACE
    if namespace == ALL_NAMESPACES:
        return None
    return check_namespace(namespace)


def write_scope(namespace: str | None) -> str:
    """The namespace a write goes to: ``default`` when not given; ``*`` is not a namespace."""
    if namespace is None or namespace == "":
        return DEFAULT_NAMESPACE
    return check_namespace(namespace)
