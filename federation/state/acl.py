"""State machine commands for ACL policies and tokens.

Tokens are stored by accessor id with the SHA-256 hash of their secret, never the secret:
the journal, Raft snapshots and ``GET /v1/snapshot`` hold nothing a caller can present.
Expiry is an absolute time carried by the command; whether a token has expired is decided
when it is used (``federation.acl.authorizer``), not here. Handlers follow ``machine.py``'s
rules: validate first, then replace records; no clock reads, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.acl.policy import check_name, check_normalised
from federation.errors import Conflict, NotFound, ValidationError

if TYPE_CHECKING:
    from federation.state.machine import Command, StateMachine

TOKEN_TYPES = ("management", "client")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_ACCESSOR = re.compile(r"^[0-9a-f-]{36}$")


def init(sm: StateMachine) -> None:
    from federation.state.journal import Table

    sm.acl_policies = Table()
    sm.acl_tokens = Table()
    sm.acl_token_by_hash = Table()
    sm.acl_bootstrapped = False


def snapshot(sm: StateMachine) -> dict[str, Any]:
    return {"acl_policies": list(sm.acl_policies.values()),
            "acl_tokens": list(sm.acl_tokens.values()),
            "acl_bootstrapped": sm.acl_bootstrapped}


def load(sm: StateMachine, data: dict[str, Any]) -> None:
    """Fill the ACL tables from a snapshot (one without them leaves them empty), checking
    every record first: a malformed one is refused with its field named."""
    from federation.state.journal import Table

    policies = data.get("acl_policies", [])
    tokens = data.get("acl_tokens", [])
    if not isinstance(policies, list) or not isinstance(tokens, list):
        raise ValidationError("acl_policies and acl_tokens are lists", field="acl_policies")
    checked_policies = {}
    for i, policy in enumerate(policies):
        if not isinstance(policy, dict):
            raise ValidationError("a policy is a mapping", field=f"acl_policies[{i}]")
        name = check_name(policy.get("name"))
        try:
            rules = check_normalised(policy.get("rules"))
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"acl_policies[{i}].rules") from None
        checked_policies[name] = {**policy, "rules": rules}
    checked_tokens = {}
    for i, token in enumerate(tokens):
        if not isinstance(token, dict) or not isinstance(token.get("accessor_id"), str) \
                or not isinstance(token.get("secret_hash"), str) \
                or not _HASH.match(token["secret_hash"]) \
                or token.get("type") not in TOKEN_TYPES \
                or not isinstance(token.get("policies", []), list) \
                or not isinstance(token.get("expiration_time"), int | float | None):
            raise ValidationError("a malformed ACL token", field=f"acl_tokens[{i}]")
        checked_tokens[token["accessor_id"]] = dict(token)
    init(sm)
    sm.acl_policies = Table(checked_policies)
    sm.acl_tokens = Table(checked_tokens)
    sm.acl_bootstrapped = data.get("acl_bootstrapped", False) is True
    sm.acl_token_by_hash = Table({t["secret_hash"]: t for t in checked_tokens.values()})


def _token(sm: StateMachine, command: Command) -> dict[str, Any]:
    token = command.get("token")
    if not isinstance(token, dict):
        raise ValidationError("command field 'token' is missing or malformed", field="token")
    if not isinstance(token.get("accessor_id"), str) or not _ACCESSOR.match(
            token["accessor_id"]):
        raise ValidationError("token.accessor_id must be a UUID", field="accessor_id")
    if not isinstance(token.get("secret_hash"), str) or not _HASH.match(token["secret_hash"]):
        raise ValidationError("token.secret_hash must be a SHA-256 hex digest",
                              field="secret_hash")
    check_name(token.get("name"), "token")
    if token.get("type") not in TOKEN_TYPES:
        raise ValidationError(f"type must be one of {', '.join(TOKEN_TYPES)}", field="type")
    policies = token.get("policies") or []
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        raise ValidationError("policies is a list of policy names", field="policies")
    if token["type"] == "client" and not policies:
        raise ValidationError("a client token needs at least one policy", field="policies")
    for i, name in enumerate(policies):
        if name not in sm.acl_policies:
            raise NotFound(f"no policy {name!r}", field=f"policies[{i}]")
    expires = token.get("expiration_time")
    if expires is not None and not isinstance(expires, int | float):
        raise ValidationError("expiration_time is a time in seconds", field="expiration_time")
    if token["accessor_id"] in sm.acl_tokens or token["secret_hash"] in sm.acl_token_by_hash:
        raise Conflict("a token with this accessor or secret exists", field="accessor_id")
    return {"accessor_id": token["accessor_id"], "secret_hash": token["secret_hash"],
            "name": token["name"], "type": token["type"], "policies": sorted(set(policies)),
            "expiration_time": expires, "create_time": command.get("time", 0.0)}


def _put_token(sm: StateMachine, record: dict[str, Any]) -> dict[str, Any]:
    index = sm._bump()
    stored = {**record, "create_index": index, "modify_index": index}
    sm.acl_tokens[stored["accessor_id"]] = stored
    sm.acl_token_by_hash[stored["secret_hash"]] = stored
    return {"accessor_id": stored["accessor_id"], "index": index}


def _bootstrap(sm: StateMachine, command: Command) -> dict[str, Any]:
    if sm.acl_bootstrapped:
        raise Conflict("the ACL system is already bootstrapped", field="bootstrap")
    record = _token(sm, command)
    if record["type"] != "management":
        raise ValidationError("the bootstrap token is a management token", field="type")
    sm.acl_bootstrapped = True
    return _put_token(sm, record)


def _token_create(sm: StateMachine, command: Command) -> dict[str, Any]:
    return _put_token(sm, _token(sm, command))


def _token_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    accessor = command.get("accessor_id")
    token = sm.acl_tokens.get(accessor) if isinstance(accessor, str) else None
    if token is None:
        raise NotFound(f"no token {accessor!r}", field="accessor_id")
    sm._bump()
    del sm.acl_tokens[token["accessor_id"]]
    sm.acl_token_by_hash.pop(token["secret_hash"], None)
    return {"accessor_id": token["accessor_id"]}


def _policy_upsert(sm: StateMachine, command: Command) -> dict[str, Any]:
    policy = command.get("policy")
    if not isinstance(policy, dict):
        raise ValidationError("command field 'policy' is missing or malformed", field="policy")
    name = check_name(policy.get("name"))
    rules = check_normalised(policy.get("rules"))
    description = policy.get("description") or ""
    if not isinstance(description, str) or len(description) > 1024:
        raise ValidationError("description is a string of at most 1024 characters",
                              field="description")
    existing = sm.acl_policies.get(name)
    if existing is not None and existing["rules"] == rules \
            and existing["description"] == description:
        return {"name": name, "changed": False}
    index = sm._bump()
    sm.acl_policies[name] = {"name": name, "description": description, "rules": rules,
                             "create_index": existing["create_index"] if existing else index,
                             "modify_index": index}
    return {"name": name, "changed": True}


def _policy_delete(sm: StateMachine, command: Command) -> dict[str, Any]:
    name = command.get("name")
    if not isinstance(name, str) or name not in sm.acl_policies:
        raise NotFound(f"no policy {name!r}", field="name")
    sm._bump()
    del sm.acl_policies[name]
    # Tokens keep naming it: a deleted policy grants nothing, and one re-created under the
    # same name applies again (as in Nomad).
    return {"name": name}


HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "acl.bootstrap": _bootstrap,
    "acl.token.create": _token_create,
    "acl.token.delete": _token_delete,
    "acl.policy.upsert": _policy_upsert,
    "acl.policy.delete": _policy_delete,
}
