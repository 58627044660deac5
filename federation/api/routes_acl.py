"""ACL endpoints: bootstrap, policies and tokens (management only, but ``token/self``).

A token's secret is derived from the cluster secret and the command id (as node tokens are),
so a retry with the same ``Idempotency-Key`` returns the same secret while only its hash is
committed; the secret is shown in the answer that creates it and never again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request

from federation.acl.authorizer import PUBLIC, Need, secret_hash
from federation.acl.policy import check_name, parse_policy_text
from federation.api.acl import audit, authenticate, require
from federation.api.deps import MAX_BODY_BYTES, command_id, document, master
from federation.errors import Forbidden, ValidationError
from federation.specs.duration import parse_duration

router = APIRouter(tags=["acl"])
MANAGE = [Depends(require(Need("acl", "management")))]


def _token_view(token: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    view = {k: v for k, v in token.items() if k != "secret_hash"}
    if secret is not None:
        view["secret_id"] = secret
    return view


async def _create(request: Request, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    m = master(request)
    cid = command_id(request, f"acl-{kind}")
    secret = m.acl_secret(cid)
    accessor = str(uuid.UUID(bytes=bytes.fromhex(secret_hash("accessor:" + cid)[:32])))
    now = time.time()
    expires = None
    if body.get("ttl") is not None:
        try:
            seconds = parse_duration(body["ttl"])
        except (ValueError, TypeError) as exc:
            raise ValidationError(str(exc), field="ttl") from None
        if seconds <= 0:
            raise ValidationError("ttl must be positive", field="ttl")
        expires = now + seconds
    token = {"accessor_id": accessor, "secret_hash": secret_hash(secret),
             "name": body.get("name", "bootstrap" if kind == "bootstrap" else None),
             "type": body.get("type", "client"), "policies": body.get("policies") or [],
             "expiration_time": expires}
    await m.commit({"type": "acl.bootstrap" if kind == "bootstrap" else "acl.token.create",
                    "id": cid, "time": now, "token": token})
    stored = m.machine.acl_tokens.get(accessor) or token
    return _token_view(stored, secret)


@router.post("/v1/acl/bootstrap", status_code=201, dependencies=[Depends(require(PUBLIC))])
async def bootstrap(request: Request) -> dict[str, Any]:
    """The first management token, once per cluster. Open to anyone on a cluster without
    ``--token-file`` (as Nomad's is), else it needs that bootstrap token."""
    m = master(request)
    if m.config.token is not None and not authenticate(request).unrestricted:
        raise Forbidden("this cluster has a bootstrap token (--token-file): present it")
    result = await _create(request, "bootstrap", {"type": "management", "name": "bootstrap"})
    audit.info("ACL bootstrap: management token %s created", result["accessor_id"])
    return result


@router.put("/v1/acl/policy/{name}", dependencies=MANAGE)
async def apply_policy(request: Request, name: str) -> dict[str, Any]:
    """Create or replace a policy. Body: the rules as HCL, YAML or JSON; or JSON
    ``{"description": "...", "rules": <rules or their text>}``."""
    check_name(name)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    description = ""
    rules_source: Any = raw
    if "json" in request.headers.get("content-type", ""):
        body = await document(request)
        if isinstance(body, dict) and "rules" in body:
            description = body.get("description") or ""
            rules_source = body["rules"]
    if isinstance(rules_source, str | bytes):
        rules = parse_policy_text(rules_source)
    else:
        from federation.acl.policy import normalise

        rules = normalise(rules_source)
    value = await master(request).commit(
        {"type": "acl.policy.upsert", "id": command_id(request, f"acl-policy:{name}"),
         "policy": {"name": name, "description": description, "rules": rules}})
    return {**value, "rules": rules}


@router.get("/v1/acl/policies", dependencies=MANAGE)
async def list_policies(request: Request) -> list[dict[str, Any]]:
    return sorted(master(request).machine.acl_policies.values(), key=lambda p: p["name"])


@router.get("/v1/acl/policy/{name}", dependencies=MANAGE)
async def get_policy(request: Request, name: str) -> dict[str, Any]:
    from federation.errors import NotFound

    policy = master(request).machine.acl_policies.get(name)
    if policy is None:
        raise NotFound(f"no policy {name!r}")
    return policy


@router.delete("/v1/acl/policy/{name}", dependencies=MANAGE)
async def delete_policy(request: Request, name: str) -> dict[str, Any]:
    return await master(request).commit(
        {"type": "acl.policy.delete", "id": command_id(request, f"acl-policy-delete:{name}"),
         "name": name})


@router.post("/v1/acl/tokens", status_code=201, dependencies=MANAGE)
async def create_token(request: Request) -> dict[str, Any]:
    """``{"name", "type": "client"|"management", "policies": [...], "ttl": "24h"}``;
    the answer holds ``secret_id``, shown this once."""
    body = await document(request)
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(body) - {"name", "type", "policies", "ttl"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    check_name(body.get("name"), "token")
    result = await _create(request, "token", body)
    audit.info("ACL token %s (%s) created by %s", result["accessor_id"], result["name"],
               authenticate(request).label)
    return result


@router.get("/v1/acl/tokens", dependencies=MANAGE)
async def list_tokens(request: Request) -> list[dict[str, Any]]:
    tokens = master(request).machine.acl_tokens.values()
    return [_token_view(t) for t in sorted(tokens, key=lambda t: (t["name"], t["accessor_id"]))]


@router.get("/v1/acl/token/self", dependencies=[Depends(require(Need("authenticated")))])
async def token_self(request: Request) -> dict[str, Any]:
    principal = authenticate(request)
    token = master(request).machine.acl_tokens.get(principal.accessor)
    if token is not None:
        return _token_view(token)
    return {"accessor_id": principal.accessor, "name": principal.name,
            "type": principal.kind, "policies": list(principal.policies),
            "expiration_time": None}


@router.delete("/v1/acl/token/{accessor_id}", dependencies=MANAGE)
async def delete_token(request: Request, accessor_id: str) -> dict[str, Any]:
    return await master(request).commit(
        {"type": "acl.token.delete", "id": command_id(request, f"acl-token-delete:{accessor_id}"),
         "accessor_id": accessor_id})
