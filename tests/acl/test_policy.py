"""Policies are read from HCL, YAML or JSON into one normalised form, or refused by field."""

from __future__ import annotations

import pytest

from federation.acl.policy import NAMESPACE_POLICIES, parse_policy_text
from federation.errors import ValidationError

HCL = '''
namespace "dev-*" {
  policy       = "read"
  capabilities = ["submit-job"]
}
namespace "prod" { policy = "deny" }
node { policy = "read" }
operator { policy = "write" }
'''
YAML = '''
namespace:
  dev-*: {policy: read, capabilities: [submit-job]}
  prod: {policy: deny}
node: {policy: read}
operator: {policy: write}
'''
JSON = ('{"namespace": {"dev-*": {"policy": "read", "capabilities": ["submit-job"]},'
        ' "prod": {"policy": "deny"}}, "node": {"policy": "read"},'
        ' "operator": {"policy": "write"}}')
EXPECTED = {
    "namespace": {"dev-*": sorted([*NAMESPACE_POLICIES["read"], "submit-job"]),
                  "prod": ["deny"]},
    "node": "read", "operator": "write",
}


@pytest.mark.parametrize("text", [HCL, YAML, JSON], ids=["hcl", "yaml", "json"])
def test_the_three_syntaxes_give_the_same_rules(text: str) -> None:
    assert parse_policy_text(text) == EXPECTED


def test_write_expands_to_read_plus_the_write_capabilities() -> None:
    rules = parse_policy_text('namespace "a" { policy = "write" }')
    assert set(NAMESPACE_POLICIES["read"]) < set(rules["namespace"]["a"])
    assert {"submit-job", "read-logs", "scale"} <= set(rules["namespace"]["a"])


@pytest.mark.parametrize(("text", "field"), [
    ('namespace "a" { policy = "admin" }', "rules.namespace.a.policy"),
    ('namespace "a" { capabilities = ["root"] }', "rules.namespace.a.capabilities[0]"),
    ('namespace "a/b" { policy = "read" }', "rules.namespace.a/b"),
    ('namespace "a" { }', "rules.namespace.a"),
    ('node { policy = "admin" }', "rules.node"),
    ('plugin { policy = "read" }', "rules.plugin"),
    ("not a policy {", "rules"),
    ("{}", "rules"),
])
def test_bad_rules_are_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_policy_text(text)
    assert caught.value.field == field
