"""Placement constraints: ``{attribute, operator, value}`` and the one evaluator of them.

The operators are the job spec's, no more: ``=``, ``!=``, ``in``, ``not_in``, ``regex``,
``exists``, ``not_exists``. A node that lacks the attribute fails every operator except
``!=``, ``not_in`` (a node without a rack is not in rack r1) and ``not_exists``.

Regular expressions run on RE2 (``google-re2``), which matches in time linear in the input,
so no pattern can stall a scheduling pass; its size and the memory it may compile to are
bounded, and a pattern RE2 cannot take (backreferences, lookaround) is refused when the spec
is validated, naming the field.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import re2

from federation.errors import ValidationError

NODE_ATTRIBUTES = ("provider", "pool", "region", "zone", "rack", "instance_type", "cluster",
                   "node.id")
OPERATORS = ("=", "!=", "in", "not_in", "regex", "exists", "not_exists")
MAX_REGEX_LENGTH = 256  # characters of one pattern
MAX_REGEX_PROGRAM_BYTES = 64 * 1024  # memory RE2 may use to compile and run one pattern


def is_known_attribute(attribute: str) -> bool:
    return attribute in NODE_ATTRIBUTES or (
        attribute.startswith("labels.") and len(attribute) > len("labels.")
    )


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_REGEX_PROGRAM_BYTES
    options.log_errors = False
    return options


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Callable[[str], Any]:
    """A linear-time matcher's ``search`` for ``pattern``, or ValidationError naming
    ``value`` when the pattern is too long or not one RE2 accepts."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValidationError(
            f"regex longer than {MAX_REGEX_LENGTH} characters", field="value")
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValidationError(
            f"invalid regular expression (RE2 syntax, no backreferences or lookaround): "
            f"{detail}", field="value") from exc
    return compiled.search


@dataclass(frozen=True)
class Constraint:
    """``{attribute, operator, value}`` from a job spec, checked when built."""

    attribute: str
    operator: str = "="
    value: Any = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValidationError(f"unknown operator {self.operator!r}", field="operator")
        if not is_known_attribute(self.attribute):
            raise ValidationError(f"unknown attribute {self.attribute!r}", field="attribute")
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))
        if self.operator in ("in", "not_in") and not isinstance(self.value, tuple):
            raise ValidationError(f"{self.operator} needs a list value", field="value")
        if self.operator == "regex":
            compile_regex(str(self.value))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Constraint:
        return cls(str(spec.get("attribute", "")), str(spec.get("operator", "=")),
                   spec.get("value"))

    def matches(self, value: str | None) -> bool:
        """Whether a node whose attribute has ``value`` (``None``: it has none) satisfies
        this constraint: the one evaluator every part of federation uses."""
        op = self.operator
        if op == "exists":
            return value is not None
        if op == "not_exists":  # Kubernetes' DoesNotExist
            return value is None
        if op == "!=":
            return value is None or value != str(self.value)
        if op == "not_in":
            return value is None or value not in {str(v) for v in self.value}
        if value is None:
            return False
        if op == "=":
            return value == str(self.value)
        if op == "in":
            return value in {str(v) for v in self.value}
        return compile_regex(str(self.value))(value) is not None  # regex

    def holds(self, attributes: Mapping[str, str | None]) -> bool:
        """:meth:`matches` on an attribute map (missing keys are missing attributes)."""
        return self.matches(attributes.get(self.attribute))

    def __str__(self) -> str:
        if self.operator in ("exists", "not_exists"):
            return f"{self.attribute} {self.operator.replace('_', ' ')}"
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.attribute} {self.operator} {value}"


class HasAttributes(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def class_key(self) -> tuple[Any, ...]: ...

    def attribute(self, name: str) -> str | None: ...


class ConstraintCache:
    """Answers "which constraint, if any, rejects this node" once per class of identical
    nodes: constraints on ``node.id`` are evaluated per node, all others once per
    ``class_key``."""

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        self.per_node = [c for c in constraints if c.attribute == "node.id"]
        self.per_class = [c for c in constraints if c.attribute != "node.id"]
        self.empty = not constraints  # most groups: nothing to evaluate
        self._by_class: dict[tuple[object, ...], Constraint | None] = {}
        # node id -> its answer: a node's class key is a tuple hashed again on every
        # lookup, while the id is a string whose hash Python keeps.
        self._by_node: dict[str, Constraint | None] = {}
        self.class_hits = 0

    def first_failing(self, node: HasAttributes) -> Constraint | None:
        if self.empty:
            return None
        by_node = self._by_node
        node_id = node.id
        if node_id in by_node:
            return by_node[node_id]
        key = node.class_key
        if key in self._by_class:
            self.class_hits += 1
            failing = self._by_class[key]
        else:
            failing = next((c for c in self.per_class
                            if not c.matches(node.attribute(c.attribute))), None)
            self._by_class[key] = failing
        if failing is None:
            failing = next((c for c in self.per_node if not c.matches(node_id)), None)
        by_node[node_id] = failing
        return failing
