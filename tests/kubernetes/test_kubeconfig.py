"""A kubeconfig given to `cluster add` is checked whole: anything malformed is a 400 naming
the field, never a server error."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.members.kubeconfig import parse

GOOD = """
apiVersion: v1
kind: Config
current-context: east
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: east, context: {cluster: c, user: u}}]
"""


def test_a_self_contained_kubeconfig_is_read():
    parsed = parse(GOOD)
    assert (parsed["context"], parsed["server"]) == ("east", "https://10.0.0.1:6443")


@pytest.mark.parametrize(("text", "field"), [
    ("", "kubeconfig"), ("[1, 2]", "kubeconfig"), ("kind: Pod", "kubeconfig"),
    ("contexts: 1\nclusters: []", "kubeconfig"),
    ("contexts: [{name: a, context: [1]}]\nclusters: []\ncurrent-context: a", "context"),
    ("contexts: [{name: a, context: {cluster: [x]}}]\nclusters: [{name: c, cluster: 3}]\n"
     "current-context: a", "kubeconfig"),
    ("contexts: [{name: a, context: {cluster: c}}]\nclusters: [{name: c, cluster: "
     "{server: 'file:///etc/passwd'}}]\ncurrent-context: a", "kubeconfig"),
    ("contexts: []\nclusters: []\ncurrent-context: [1]", "context"),
    (GOOD.replace("current-context: east", "current-context: west"), "context"),
    (GOOD.replace("users: [", "users: 7\nx: ["), "kubeconfig"),
    (GOOD.replace("{token: abc}", "{exec: {command: sh}}"), "kubeconfig"),
    ("a: [" * 5 + "x", "kubeconfig"),
])
def test_a_malformed_kubeconfig_is_refused_naming_the_field(text, field):
    with pytest.raises(ValidationError) as refused:
        parse(text)
    assert refused.value.field == field
