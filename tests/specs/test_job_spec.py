"""The job spec: every malformed field is named, and a valid spec is normalised."""

from __future__ import annotations

import copy

import pytest

from federation.errors import ValidationError
from federation.specs.job import parse_document, parse_duration, validate_job


def valid() -> dict:
    return {
        "id": "nightly-etl", "type": "batch", "priority": 50, "queue": "analytics",
        "schedule": "0 2 * * *",
        "groups": [{
            "name": "worker", "count": 4, "gang": True,
            "resources": {"cpu": 500, "memory": 256, "gpu": 0},
            "constraints": [{"attribute": "provider", "operator": "!=", "value": "gcp"},
                            {"attribute": "labels.rack", "operator": "in", "value": ["r1"]}],
            "spread": "zone", "restart": {"attempts": 3, "delay": "2s"},
            "task": {"driver": "exec", "command": ["python3", "-c", "print('hello')"],
                     "env": {"STAGE": "prod"}},
        }],
    }


def _set(path: str, value):
    def mutate(spec: dict) -> None:
        target = spec
        keys = path.split("/")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return mutate


_DELETE = object()

MALFORMED = [
    ("id", _set("id", "Nightly_ETL")),
    ("id", _set("id", "x" * 64)),
    ("id", _set("id", _DELETE)),
    ("type", _set("type", "daemon")),
    ("priority", _set("priority", 101)),
    ("schedule", _set("schedule", "every night")),
    ("schedule", lambda s: (s.update(type="service"), s["groups"][0].pop("gang"))),
    ("depends_on[0]", _set("depends_on", ["Not Valid"])),
    ("depends_on", _set("depends_on", ["nightly-etl"])),
    ("groups", _set("groups", [])),
    ("groups[0].count", _set("groups/0/count", 0)),
    ("groups[0].count", _set("groups/0/count", 10_001)),
    ("groups[0].count", _set("groups/0/count", "many")),
    ("groups[0].resources.cpu", _set("groups/0/resources/cpu", -5)),
    ("groups[0].resources.memory", _set("groups/0/resources/memory", 0)),
    ("groups[0].resources.gpu", _set("groups/0/resources/gpu", 1.5)),
    ("groups[0].resources", _set("groups/0/resources", _DELETE)),
    ("groups[0].constraints[0].operator", _set("groups/0/constraints/0/operator", "~=")),
    ("groups[0].constraints[0].attribute", _set("groups/0/constraints/0/attribute", "colour")),
    ("groups[0].constraints[1].value", _set("groups/0/constraints/1/value", "r1")),
    ("groups[0].spread", _set("groups/0/spread", "weather")),
    ("groups[0].restart.delay", _set("groups/0/restart/delay", "soon")),
    ("groups[0].task.command", _set("groups/0/task/command", [])),
    ("groups[0].task.driver", _set("groups/0/task/driver", "qemu")),
    ("groups[0].task.env.1BAD", _set("groups/0/task/env", {"1BAD": "x"})),
    ("groups[0].colour", _set("groups/0/colour", "blue")),
    ("groups[1].name", lambda s: s["groups"].append(copy.deepcopy(s["groups"][0]))),
]


@pytest.mark.parametrize(("field", "mutate"), MALFORMED, ids=[f for f, _ in MALFORMED])
def test_a_malformed_spec_is_refused_naming_the_field(field: str, mutate) -> None:
    spec = valid()
    mutate(spec)
    with pytest.raises(ValidationError) as caught:
        validate_job(spec)
    assert caught.value.field == field


def test_a_valid_spec_is_normalised_with_defaults() -> None:
    minimal = {"id": "hello", "type": "service", "groups": [{
        "name": "web", "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["sleep", "1000"]}}]}
    normal = validate_job(minimal)
    assert normal["priority"] == 50
    assert normal["queue"] == "default"
    assert normal["groups"][0]["count"] == 1
    assert normal["groups"][0]["restart"] == {"attempts": 2, "delay": "2s"}
    assert validate_job(normal) == normal


def test_the_design_example_is_valid() -> None:
    assert validate_job(valid())["groups"][0]["gang"] is True


def test_a_kubernetes_manifest_is_not_taken_for_a_job() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_job({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert caught.value.field == "apiVersion"


def test_yaml_and_json_documents_decode_alike() -> None:
    assert parse_document('{"id": "a"}') == parse_document("id: a\n") == {"id": "a"}
    with pytest.raises(ValidationError):
        parse_document("{not json", content_type="application/json")
    with pytest.raises(ValidationError):
        parse_document("a: [unclosed", content_type="application/yaml")


@pytest.mark.parametrize(("text", "seconds"),
                         [("2s", 2.0), ("500ms", 0.5), ("5m", 300.0), ("1h30m", 5400.0), (3, 3.0)])
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", "1y", "5 m", True])
def test_bad_durations(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)
