"""ACL commands in the state machine: only hashes stored, all-or-nothing, snapshots."""

from __future__ import annotations

import json

from federation.acl.authorizer import secret_hash
from federation.acl.policy import parse_policy_text
from federation.state.machine import StateMachine

ACCESSOR = "0f3c2b1a-0000-4000-8000-000000000001"


def apply(sm: StateMachine, **command) -> dict:
    return sm.apply({"id": f"c{sm.index}-{command['type']}-{len(sm.applied)}", **command})


def policy(sm: StateMachine, name: str = "dev") -> dict:
    return apply(sm, type="acl.policy.upsert", policy={
        "name": name, "rules": parse_policy_text('namespace "dev" { policy = "write" }')})


def token(sm: StateMachine, accessor: str = ACCESSOR, secret: str = "s3cret",
          **fields) -> dict:
    return apply(sm, type="acl.token.create", time=10.0, token={
        "accessor_id": accessor, "secret_hash": secret_hash(secret), "name": "ci",
        "type": "client", "policies": ["dev"], **fields})


def test_a_token_is_stored_by_accessor_with_the_hash_of_its_secret_only() -> None:
    sm = StateMachine()
    assert policy(sm)["ok"]
    assert token(sm)["ok"]
    stored = sm.acl_tokens[ACCESSOR]
    assert stored["secret_hash"] == secret_hash("s3cret")
    assert sm.acl_token_by_hash[secret_hash("s3cret")] is stored
    assert "s3cret" not in json.dumps(sm.snapshot())


def test_a_token_naming_a_missing_policy_or_a_used_accessor_changes_nothing() -> None:
    sm = StateMachine()
    missing = token(sm)
    assert not missing["ok"] and missing["error"]["field"] == "policies[0]"
    assert sm.acl_tokens == {} and sm.index == 0
    policy(sm)
    token(sm)
    again = token(sm, secret="other")
    assert not again["ok"] and again["status"] == 409
    assert len(sm.acl_tokens) == 1


def test_bootstrap_happens_once() -> None:
    sm = StateMachine()
    first = apply(sm, type="acl.bootstrap", token={
        "accessor_id": ACCESSOR, "secret_hash": secret_hash("b"), "name": "bootstrap",
        "type": "management"})
    assert first["ok"] and sm.acl_bootstrapped
    second = apply(sm, type="acl.bootstrap", token={
        "accessor_id": ACCESSOR.replace("1", "2"), "secret_hash": secret_hash("c"),
        "name": "bootstrap", "type": "management"})
    assert not second["ok"] and second["status"] == 409
    assert len(sm.acl_tokens) == 1


def test_a_deleted_token_is_gone_from_both_indexes() -> None:
    sm = StateMachine()
    policy(sm)
    token(sm)
    assert apply(sm, type="acl.token.delete", accessor_id=ACCESSOR)["ok"]
    assert sm.acl_tokens == {} and sm.acl_token_by_hash == {}


def test_policies_and_tokens_survive_a_snapshot_round_trip_and_a_restore() -> None:
    sm = StateMachine()
    policy(sm)
    token(sm, expiration_time=99.0)
    data = json.loads(json.dumps(sm.snapshot()))
    copy = StateMachine.from_snapshot(data)
    assert copy.acl_policies == sm.acl_policies
    assert copy.acl_token_by_hash[secret_hash("s3cret")]["expiration_time"] == 99.0
    other = StateMachine()
    assert other.apply({"id": "r", "type": "state.restore", "snapshot": data})["ok"]
    assert secret_hash("s3cret") in other.acl_token_by_hash


def test_a_machine_pickled_before_acls_existed_loads_with_empty_tables() -> None:
    sm = StateMachine()
    state = {k: v for k, v in sm.__dict__.items() if not k.startswith("acl_")}
    old = StateMachine.__new__(StateMachine)
    old.__setstate__(state)
    assert old.acl_tokens == {} and old.acl_bootstrapped is False


def test_bad_policy_rules_in_a_command_are_refused() -> None:
    sm = StateMachine()
    result = apply(sm, type="acl.policy.upsert", policy={"name": "x", "rules": {"bogus": 1}})
    assert not result["ok"] and result["error"]["field"] == "rules.bogus"
    assert sm.acl_policies == {}
