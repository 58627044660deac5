"""The one constraint evaluator: exactly the job spec's operators, and regular expressions
that run in linear time with a bounded size."""

from __future__ import annotations

import time

import pytest

from federation.errors import ValidationError
from federation.model import OPERATORS, Constraint
from federation.specs.job import validate_job


@pytest.mark.parametrize(("operator", "value", "actual", "holds"), [
    ("=", "r1", "r1", True),
    ("=", "r1", "r2", False),
    ("=", "r1", None, False),
    ("!=", "gcp", "aws", True),
    ("!=", "gcp", None, True),  # a node without the attribute is not gcp
    ("in", ["r1", "r2"], "r2", True),
    ("in", ["r1", "r2"], None, False),
    ("not_in", ["r1"], None, True),
    ("not_in", ["r1"], "r1", False),
    ("exists", None, "x", True),
    ("exists", None, None, False),
    ("regex", "^g5\\.", "g5.xlarge", True),
    ("regex", "^g5\\.", "m5.large", False),
    ("regex", "x", None, False),
])
def test_each_operator(operator, value, actual, holds) -> None:
    assert Constraint("instance_type", operator, value).matches(actual) is holds


@pytest.mark.parametrize("operator", ["==", "is_set", "is_not_set", "not in", "~"])
def test_operators_the_spec_does_not_have_are_refused(operator) -> None:
    assert operator not in OPERATORS
    with pytest.raises(ValidationError) as caught:
        Constraint("zone", operator, "a")
    assert caught.value.field == "operator"


def test_a_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    # Python's re takes exponential time on this against a long non-matching id.
    constraint = Constraint("node.id", "regex", "^[0-9a-f]{7}([0-9a-f]+)+!")
    start = time.perf_counter()
    for _ in range(100):
        assert not constraint.matches("0123456789abcdef" * 4)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(("pattern", "why"), [
    ("(a)\\1", "backreferences"),
    ("(?=a)b", "lookaround"),
    ("a" * 300, "longer than 256"),
    ("(", "invalid"),
])
def test_patterns_the_engine_cannot_take_are_refused(pattern, why) -> None:
    with pytest.raises(ValidationError) as caught:
        Constraint("node.id", "regex", pattern)
    assert caught.value.field == "value"
    assert why.split()[0] in caught.value.message or "invalid" in caught.value.message


def test_the_job_spec_refuses_them_naming_the_field() -> None:
    spec = {"id": "r", "type": "batch", "groups": [{
        "name": "g", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "constraints": [{"attribute": "node.id", "operator": "regex", "value": "(a)\\1"}],
        "task": {"command": ["true"]}}]}
    with pytest.raises(ValidationError) as caught:
        validate_job(spec)
    assert caught.value.field == "groups[0].constraints[0].value"
    assert "RE2" in caught.value.message
