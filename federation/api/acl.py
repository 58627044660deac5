"""The ACL dependency every route declares: ``Depends(require(Need(...)))``.

It resolves the caller (bearer secret, node credential, or nobody) against the servers'
secrets and the replicated ACL tables, asks the pure authorizer, and records writes in the
audit log with the caller's accessor id (never a secret). A route whose dependencies hold no
``require(...)`` is a bug: ``tests/api/test_route_capabilities.py`` walks the app's routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from federation.acl.authorizer import (
    Credentials,
    Need,
    Principal,
    allowed,
    any_namespace,
    resolve,
    secret_hash,
)
from federation.errors import Forbidden, NotFound, Unauthorized

audit = logging.getLogger("federation.audit")
NEED_ATTRIBUTE = "federation_need"
READ_METHODS = ("GET", "HEAD", "OPTIONS")


def credentials(master: Any) -> Credentials:
    config = master.config
    machine = master.machine
    bootstrap = getattr(config, "token", None)
    join = getattr(master, "join_token", None) or getattr(config, "join_token", None)
    return Credentials(
        enforced=bootstrap is not None or bool(getattr(machine, "acl_bootstrapped", False)),
        bootstrap_hash=secret_hash(bootstrap) if bootstrap else None,
        join_hash=secret_hash(join) if join else None,
        tokens_by_hash=getattr(machine, "acl_token_by_hash", {}),
        policies=getattr(machine, "acl_policies", {}),
    )


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def authenticate(request: Request) -> Principal:
    """The caller of this request, cached on it (several dependencies may ask)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    master = request.app.state.master
    principal = resolve(credentials(master), bearer(request),
                        request.headers.get("x-node-token"), time.time())
    request.state.principal = principal
    return principal


def namespace_of(request: Request) -> str:
    return request.query_params.get("namespace") or "default"


def check(request: Request, need: Need, namespace: str | None = None,
          node_token_hash: str | None = None) -> Principal:
    """Authorize ``need`` now (routes call it again once they know a record's namespace)."""
    principal = authenticate(request)
    ns = namespace if namespace is not None else namespace_of(request)
    if need.area == "namespace" and ns == "*":
        ok = any_namespace(principal, need.what)
    else:
        ok = allowed(principal, need, ns, node_token_hash)
    if not ok:
        where = f" in namespace {ns!r}" if need.area == "namespace" else ""
        raise Forbidden(f"permission denied: this needs {need}{where} "
                        f"({principal.label} does not have it)")
    return principal


def _node_self(request: Request) -> Principal:
    token = request.headers.get("x-node-token")
    if not token:
        raise Unauthorized("a node must present its token in X-Node-Token")
    node_id = request.path_params.get("node_id")
    node = request.app.state.master.machine.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}")
    principal = Principal("node", node_token_hash=secret_hash(token))
    if not allowed(principal, Need("node-self"), node_token_hash=node["token_hash"]):
        raise Forbidden("the node token does not match this node")
    request.state.principal = principal
    return principal


def require(need: Need) -> Callable[[Request], Awaitable[Principal | None]]:
    """A FastAPI dependency that lets the request through only with ``need`` granted."""

    async def dependency(request: Request) -> Principal | None:
        # Async although it awaits nothing: FastAPI runs sync dependencies in a thread pool.
        if need.area == "public":
            return None  # no credential is even looked at
        if need.area == "node-self":
            principal = _node_self(request)
        else:
            principal = check(request, need)
        if request.method not in READ_METHODS and need.area != "node-self":
            audit.info("%s %s by %s (needs %s)", request.method, request.url.path,
                       principal.label, need)
        return principal

    setattr(dependency, NEED_ATTRIBUTE, need)
    dependency.__name__ = f"require_{str(need).replace(':', '_').replace('-', '_')}"
    return dependency


def declared_needs(dependant: Any) -> list[Need]:
    """Every ``Need`` declared in a route's dependency tree (for the route test)."""
    found = []
    for sub in dependant.dependencies:
        need = getattr(sub.call, NEED_ATTRIBUTE, None)
        if need is not None:
            found.append(need)
        found.extend(declared_needs(sub))
    return found


def record_namespace(record: dict[str, Any] | None) -> str:
    """The namespace a job, spec or allocation lives in (``default`` when it names none)."""
    if not record:
        return "default"
    return str(record.get("namespace") or (record.get("spec") or {}).get("namespace")
               or "default")


def visible(request: Request, record: dict[str, Any] | None, capability: str) -> bool:
    """Whether the caller holds ``capability`` in the namespace of ``record``."""
    return allowed(authenticate(request), Need("namespace", capability),
                   record_namespace(record))


def effective_routes(routes: list[Any]) -> list[tuple[str, str, Any]]:
    """``(methods, path, dependant)`` of every route an app serves, with the dependencies
    a router adds to its routes (newer FastAPI keeps included routers as one entry)."""
    out: list[tuple[str, str, Any]] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                dependant = getattr(context, "dependant", None)
                if dependant is None:
                    out.append(("", str(getattr(context, "path", context)), None))
                else:
                    out.append((",".join(sorted(context.methods or ())), context.path,
                                dependant))
            continue
        dependant = getattr(route, "dependant", None)
        out.append((",".join(sorted(getattr(route, "methods", None) or ())),
                    str(getattr(route, "path", route)), dependant))
    return out


def visibility(request: Request) -> Callable[[dict[str, Any] | None, str], bool]:
    """``may(record, capability)`` for filtering lists, with the caller resolved now (the
    filter may run on another thread)."""
    principal = authenticate(request)

    def may(record: dict[str, Any] | None, capability: str) -> bool:
        return allowed(principal, Need("namespace", capability), record_namespace(record))

    return may
