"""The authorizer's decisions as tables: expansion, union, deny wins, globs, kinds of caller,
anonymous, expired and deleted tokens."""

from __future__ import annotations

import pytest

from federation.acl.authorizer import (
    Credentials,
    Need,
    Principal,
    allowed,
    any_namespace,
    compile_acl,
    resolve,
    secret_hash,
)
from federation.acl.policy import parse_policy_text
from federation.errors import Forbidden, Unauthorized

NOW = 1_000_000.0
POLICIES = {
    "read-dev": {"rules": parse_policy_text('namespace "dev-*" { policy = "read" }')},
    "write-a": {"rules": parse_policy_text('namespace "a" { policy = "write" }')},
    "logs-a": {"rules": parse_policy_text('namespace "a" { capabilities = ["read-logs"] }')},
    "deny-dev-secret": {"rules": parse_policy_text('namespace "dev-secret" { policy = "deny" }')},
    "nodes-read": {"rules": parse_policy_text('node { policy = "read" }')},
    "nodes-write": {"rules": parse_policy_text('node { policy = "write" }')},
    "nodes-deny": {"rules": parse_policy_text('node { policy = "deny" }')},
    "anonymous": {"rules": parse_policy_text('namespace "public" { policy = "read" }')},
}


def client(*names: str) -> Principal:
    return Principal("client", accessor="x", acl=compile_acl([POLICIES[n]["rules"]
                                                               for n in names]))


@pytest.mark.parametrize(("policies", "namespace", "capability", "expected"), [
    (("read-dev",), "dev-1", "read-job", True),
    (("read-dev",), "dev-1", "list-jobs", True),
    (("read-dev",), "dev-1", "submit-job", False),       # read does not include write
    (("read-dev",), "dev-1", "read-logs", False),        # logs are write-level
    (("read-dev",), "prod", "read-job", False),          # default deny
    (("read-dev",), "dev", "read-job", False),           # the glob needs the dash
    (("write-a",), "a", "submit-job", True),
    (("write-a",), "a", "read-logs", True),
    (("write-a",), "ab", "submit-job", False),
    (("logs-a",), "a", "read-logs", True),                # a fine capability alone
    (("logs-a",), "a", "read-job", False),
    (("read-dev", "write-a"), "a", "submit-job", True),   # union across policies
    (("read-dev", "write-a"), "dev-x", "read-job", True),
    (("read-dev", "deny-dev-secret"), "dev-secret", "read-job", False),  # deny wins
    (("read-dev", "deny-dev-secret"), "dev-other", "read-job", True),
])
def test_namespace_capabilities(policies, namespace, capability, expected) -> None:
    assert allowed(client(*policies), Need("namespace", capability), namespace) is expected


@pytest.mark.parametrize(("policies", "need", "expected"), [
    (("nodes-read",), Need("node", "read"), True),
    (("nodes-read",), Need("node", "write"), False),
    (("nodes-write",), Need("node", "read"), True),       # write includes read
    (("nodes-write", "nodes-read"), Need("node", "write"), True),
    (("nodes-write", "nodes-deny"), Need("node", "read"), False),  # deny wins
    (("nodes-write",), Need("node-register"), True),      # node write may register nodes
    (("nodes-read",), Need("node-register"), False),
    (("nodes-write",), Need("pool", "read"), False),      # nothing else
    (("write-a",), Need("operator", "read"), False),
    (("write-a",), Need("acl", "management"), False),     # ACLs are management's
    (("write-a",), Need("authenticated"), True),
    (("write-a",), Need("node-self"), False),
    (("write-a",), Need("agent"), False),
])
def test_area_rules(policies, need, expected) -> None:
    assert allowed(client(*policies), need) is expected


@pytest.mark.parametrize(("principal", "need", "expected"), [
    (Principal("management"), Need("acl", "management"), True),
    (Principal("management"), Need("namespace", "submit-job"), True),
    (Principal("open"), Need("operator", "write"), True),
    (Principal("join"), Need("node-register"), True),
    (Principal("join"), Need("agent"), True),
    (Principal("join"), Need("namespace", "read-job"), False),
    (Principal("join"), Need("node", "read"), False),
    (Principal("join"), Need("node-self"), False),
    (Principal("node", node_token_hash="h1"), Need("agent"), True),
    (Principal("node", node_token_hash="h1"), Need("namespace", "list-jobs"), False),
    (Principal("node", node_token_hash="h1"), Need("node", "read"), False),
    (Principal("node", node_token_hash="h1"), Need("authenticated"), False),
    (Principal("anonymous"), Need("authenticated"), False),
])
def test_kinds_of_caller(principal, need, expected) -> None:
    assert allowed(principal, need) is expected


def test_a_node_credential_opens_its_own_node_only() -> None:
    node = Principal("node", node_token_hash="h1")
    assert allowed(node, Need("node-self"), node_token_hash="h1")
    assert not allowed(node, Need("node-self"), node_token_hash="h2")


def test_star_reads_need_some_namespace_granting_the_capability() -> None:
    assert any_namespace(client("read-dev"), "list-jobs")
    assert not any_namespace(client("read-dev"), "submit-job")
    assert not any_namespace(Principal("join"), "list-jobs")


def creds(enforced: bool = True, **tokens) -> Credentials:
    return Credentials(enforced=enforced, bootstrap_hash=secret_hash("boot"),
                       join_hash=secret_hash("join"),
                       tokens_by_hash={secret_hash(s): t for s, t in tokens.items()},
                       policies=POLICIES)


def token(kind: str = "client", expires: float | None = None, policies=("write-a",)) -> dict:
    return {"accessor_id": "acc-1", "name": "ci", "type": kind, "policies": list(policies),
            "expiration_time": expires}


def test_resolving_secrets() -> None:
    c = creds(s1=token(), s2=token("management"), old=token(expires=NOW - 1),
              fresh=token(expires=NOW + 60))
    assert resolve(c, "boot", None, NOW).kind == "management"
    assert resolve(c, "join", None, NOW).kind == "join"
    assert resolve(c, "s2", None, NOW).kind == "management"
    one = resolve(c, "s1", None, NOW)
    assert one.kind == "client" and one.accessor == "acc-1"
    assert allowed(one, Need("namespace", "submit-job"), "a")
    assert resolve(c, "fresh", None, NOW).kind == "client"
    with pytest.raises(Forbidden, match="expired"):
        resolve(c, "old", None, NOW)
    with pytest.raises(Forbidden, match="unknown or deleted"):
        resolve(c, "deleted-or-never-made", None, NOW)


def test_a_token_whose_policy_was_deleted_grants_nothing() -> None:
    c = creds(s1=token(policies=("gone",)))
    assert not allowed(resolve(c, "s1", None, NOW), Need("namespace", "read-job"), "a")


def test_no_secret_is_anonymous_when_enforced_and_open_when_not() -> None:
    anonymous = resolve(creds(), None, None, NOW)
    assert anonymous.kind == "anonymous"
    assert allowed(anonymous, Need("namespace", "read-job"), "public")
    assert not allowed(anonymous, Need("namespace", "read-job"), "a")
    without = Credentials(enforced=True, policies={})
    with pytest.raises(Unauthorized):
        resolve(without, None, None, NOW)
    assert resolve(Credentials(enforced=False), None, None, NOW).kind == "open"


def test_a_node_credential_alone_is_a_node() -> None:
    principal = resolve(creds(), None, "node-secret", NOW)
    assert principal.kind == "node" and principal.node_token_hash == secret_hash("node-secret")
    # With a bearer secret as well, the bearer decides (the route checks the node token).
    assert resolve(creds(), "join", "node-secret", NOW).kind == "join"
