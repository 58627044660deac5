"""The authorizer: who is calling (a ``Principal``) and may they do this (``allowed``).

Callers are resolved from the secret they present and the replicated tables, with the time
passed in; nothing here reads a clock or a socket, so the decision tables are unit-tested.

Kinds of principal, each with one job:

* ``management``: everything (the ``--token-file`` bootstrap secret, management ACL tokens);
* ``client``: what the union of its policies grants: deny wins, nothing granted is denied;
* ``anonymous``: no secret presented, ACLs enforced: the ``anonymous`` policy if one exists;
* ``join``: the servers' join secret: may register a node and read agent settings, no more;
* ``node``: a node credential (``X-Node-Token``): its own node's work, heartbeats, reports;
* ``open``: ACLs not enforced (no token file and not bootstrapped, loopback only): anything.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from federation.acl.policy import AREAS
from federation.errors import Forbidden, Unauthorized

ANONYMOUS_POLICY = "anonymous"
BOOTSTRAP_ACCESSOR = "bootstrap"


def secret_hash(secret: str) -> str:
    """What the state stores of a secret. Secrets are 256-bit random values, so a plain
    SHA-256 cannot be brute-forced; a slow hash would only slow every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Need:
    """What a route needs. ``area`` is ``namespace`` (``what`` a capability), one of the
    cluster areas (``what`` = ``read``/``write``), or a special one:

    * ``node-self``: a node credential for the node in the path (or management);
    * ``node-register``: join secret, management, node ``write``, or a node credential (the
      route then checks the name is that node's own);
    * ``agent``: any credential an agent may hold (join, node) or management;
    * ``acl``: management only (ACL tokens and policies);
    * ``authenticated``: any valid token (``token self``);
    * ``namespaced``: a caller that may hold namespace capabilities (client, anonymous,
      management); the route itself checks the capability once it knows the namespace and
      the operation (the Kubernetes endpoint: one route serves every resource and verb);
    * ``public``: nobody needs anything (health).
    """

    area: str
    what: str = ""

    def __str__(self) -> str:
        return f"{self.area}:{self.what}" if self.what else self.area


PUBLIC = Need("public")


@dataclass(frozen=True)
class ACL:
    """A compiled set of policies: namespace globs with capabilities, and area levels."""

    namespaces: tuple[tuple[str, frozenset[str]], ...] = ()
    levels: tuple[tuple[str, str], ...] = ()

    def capabilities(self, namespace: str) -> frozenset[str]:
        """Union of every rule whose glob matches; any ``deny`` among them empties it."""
        found: set[str] = set()
        for glob, caps in self.namespaces:
            if fnmatchcase(namespace, glob):
                if "deny" in caps:
                    return frozenset()
                found |= caps
        return frozenset(found)

    def allows_namespace(self, namespace: str, capability: str) -> bool:
        return capability in self.capabilities(namespace)

    def level(self, area: str) -> str | None:
        return dict(self.levels).get(area)

    def allows_area(self, area: str, wanted: str) -> bool:
        level = self.level(area)
        return level == "write" or (level == "read" and wanted == "read")


def compile_acl(rule_sets: list[dict[str, Any]]) -> ACL:
    """Compile normalised policies (see ``federation.acl.policy``) into one ACL."""
    namespaces: list[tuple[str, frozenset[str]]] = []
    levels: dict[str, str] = {}
    rank = {"read": 1, "write": 2}
    for rules in rule_sets:
        for glob, caps in sorted((rules.get("namespace") or {}).items()):
            namespaces.append((glob, frozenset(caps)))
        for area in AREAS:
            level = rules.get(area)
            if level is None:
                continue
            current = levels.get(area)
            if level == "deny" or current == "deny":
                levels[area] = "deny"
            elif current is None or rank[level] > rank[current]:
                levels[area] = level
    return ACL(tuple(namespaces), tuple(sorted(levels.items())))


@dataclass(frozen=True)
class Principal:
    kind: str
    accessor: str = ""
    name: str = ""
    acl: ACL = field(default_factory=ACL)
    policies: tuple[str, ...] = ()
    node_token_hash: str = ""  # kind node: hash of the presented node credential

    @property
    def label(self) -> str:
        """How the audit log names the caller (never a secret)."""
        if self.kind in ("client", "management") and self.accessor:
            return f"accessor {self.accessor} ({self.name or self.kind})"
        return self.kind

    @property
    def unrestricted(self) -> bool:
        return self.kind in ("management", "open")


@dataclass(frozen=True)
class Credentials:
    """What the servers know to resolve a secret: the replicated ACL tables and the
    secrets given on the command line (as hashes)."""

    enforced: bool
    bootstrap_hash: str | None = None
    join_hash: str | None = None
    tokens_by_hash: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)


def _same(a: str, b: str | None) -> bool:
    return b is not None and hmac.compare_digest(a, b)


def resolve(creds: Credentials, secret: str | None, node_token: str | None,
            now: float) -> Principal:
    """The principal behind a request's bearer secret or node credential.

    Raises ``Unauthorized`` (401) for no usable credential where one is required and
    ``Forbidden`` (403) for a secret that is unknown, deleted or expired.
    """
    if secret is None and node_token is not None:
        return Principal("node", node_token_hash=secret_hash(node_token))
    if secret is None:
        if not creds.enforced:
            return Principal("open")
        anonymous = creds.policies.get(ANONYMOUS_POLICY)
        if anonymous is None:
            raise Unauthorized(
                "this server requires an API token: Authorization: Bearer <token>")
        return Principal("anonymous", acl=compile_acl([anonymous["rules"]]),
                         policies=(ANONYMOUS_POLICY,))
    hashed = secret_hash(secret)
    if _same(hashed, creds.bootstrap_hash):
        return Principal("management", accessor=BOOTSTRAP_ACCESSOR, name="--token-file")
    if _same(hashed, creds.join_hash):
        return Principal("join", name="join secret")
    token = creds.tokens_by_hash.get(hashed)
    if token is None:
        raise Forbidden("the API token is not valid for this cluster (unknown or deleted)")
    expires = token.get("expiration_time")
    if expires is not None and now >= float(expires):
        raise Forbidden(f"the API token {token['accessor_id']} has expired")
    if token["type"] == "management":
        return Principal("management", accessor=token["accessor_id"], name=token["name"])
    names = tuple(token.get("policies") or ())
    rules = [creds.policies[n]["rules"] for n in names if n in creds.policies]
    return Principal("client", accessor=token["accessor_id"], name=token["name"],
                     acl=compile_acl(rules), policies=names)


def allowed(principal: Principal, need: Need, namespace: str = "default",
            node_token_hash: str | None = None) -> bool:
    """May ``principal`` do what ``need`` names? ``namespace`` for namespace needs,
    ``node_token_hash``: the stored hash of the node a ``node-self`` need is about."""
    if need.area == "public" or principal.unrestricted:
        return True
    kind = principal.kind
    if need.area == "authenticated":
        return kind in ("client", "management")
    if need.area == "namespaced":
        return kind in ("client", "anonymous")
    if kind == "node":
        if need.area == "node-self":
            return node_token_hash is not None and _same(
                principal.node_token_hash, node_token_hash)
        return need.area in ("agent", "node-register")
    if kind == "join":
        return need.area in ("agent", "node-register")
    # client or anonymous: their ACL decides
    acl = principal.acl
    if need.area == "namespace":
        return acl.allows_namespace(namespace, need.what)
    if need.area in AREAS:
        return acl.allows_area(need.area, need.what)
    if need.area == "node-register":
        return acl.allows_area("node", "write")
    return False  # node-self, agent, acl: not for client tokens


def may_list(principal: Principal, namespace: str, capability: str = "list-jobs") -> bool:
    """For reads across namespaces (``?namespace=*``): is this record's namespace visible?"""
    return allowed(principal, Need("namespace", capability), namespace)


def any_namespace(principal: Principal, capability: str) -> bool:
    """Whether some namespace grants ``capability`` (a ``*`` read needs one to start)."""
    if principal.unrestricted:
        return True
    if principal.kind not in ("client", "anonymous"):
        return False
    return any(capability in caps and "deny" not in caps
               for _, caps in principal.acl.namespaces)
