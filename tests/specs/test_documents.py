"""The one document decoder: every bound is a 400 naming the problem, never a crash."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.specs.documents import Limits, check_value, decode


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, levels + 1):
        name, prev = chr(97 + level), chr(96 + level)
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


REFUSED = [
    # (document, content type, words the message must hold, field)
    ("[" * 100_000 + "]" * 100_000, "application/json", "nested deeper", "body"),
    ("[" * 100_000 + "]" * 100_000, "", "nested deeper", "body"),
    ("[" * 100_000 + "]" * 100_000, "application/yaml", "nest", "body"),
    ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 80)), "application/yaml",
     "nested deeper", "body"),
    ('{"a": ' + "9" * 5000 + "}", "application/json", "5000 digits", "body"),
    ("a: " + "9" * 5000, "application/yaml", "5000 digits", "body"),
    ('{"a": NaN}', "application/json", "NaN", "body"),
    ('{"a": 1e999}', "application/json", "out of range", "body"),
    ("a: {b: .inf}", "application/yaml", "finite", "a.b"),
    ("a: !!binary aGVsbG8=", "application/yaml", "tag", "body"),
    ("a: !!set {x}", "application/yaml", "tag", "body"),
    ("a: !custom x", "application/yaml", "tag", "body"),
    ("{1: 2}", "application/yaml", "keys must be strings", "body"),
    ("a: [{3: x}]", "application/yaml", "keys must be strings", "a[0]"),
    ("a: &a [1, *a]", "application/yaml", "refers to itself", "body"),
    ("a: *nowhere", "application/yaml", "not defined", "body"),
    (billion_laughs(), "application/yaml", "expands", "body"),
    ("x: 1\n---\ny: 2\n", "application/yaml", "one YAML document", "body"),
    (b"\xff\xfe", "", "UTF-8", "body"),
    ("{not json", "application/json", "invalid JSON", "body"),
    ("a: [unclosed", "application/yaml", "invalid YAML", "body"),
    ('{"s": "' + "x" * 70_000 + '"}', "application/json", "70000 characters", "s"),
    ("s: " + "x" * 70_000, "application/yaml", "70000 characters", "body"),
    ("[" + ",".join(["0"] * 10_001) + "]", "application/json", "10000 items", "body"),
    ("[" + ",".join(["0"] * 10_001) + "]", "application/yaml", "10000 items", "body"),
]


@pytest.mark.parametrize(("document", "content_type", "words", "field"), REFUSED)
def test_out_of_bounds_documents_are_refused_naming_the_problem(
        document, content_type, words, field) -> None:
    with pytest.raises(ValidationError) as refused:
        decode(document, content_type=content_type)
    assert words in refused.value.message
    assert refused.value.field == field


def test_yaml_aliases_within_bounds_are_expanded() -> None:
    assert decode("base: &b {cpu: 1}\nuse: *b\n", content_type="application/yaml") == {
        "base": {"cpu": 1}, "use": {"cpu": 1}}


def test_yaml_dates_stay_strings_and_merge_keys_work() -> None:
    value = decode("d: 2024-01-01\nbase: &b {x: 1}\nm: {<<: *b, y: 2}\n", content_type="yaml")
    assert value == {"d": "2024-01-01", "base": {"x": 1}, "m": {"x": 1, "y": 2}}


def test_json_is_tried_first_and_yaml_is_the_fallback() -> None:
    assert decode('{"id": "a"}') == decode("id: a\n") == {"id": "a"}


def test_the_value_check_refuses_what_json_cannot_carry_and_names_where() -> None:
    with pytest.raises(ValidationError) as refused:
        check_value({"groups": [{"env": {"x": object()}}]})
    assert refused.value.field == "groups[0].env.x"


def test_limits_are_per_call() -> None:
    roomy = Limits(max_items=20_000)
    assert len(decode("[" + ",".join(["0"] * 10_001) + "]", limits=roomy)) == 10_001
