"""Who is signed in to the UI and what they may do: the one decision the UI asks.

The UI calls ``authorizer.authenticate(token)`` at sign-in and on every request, and
``authorizer.may(principal, capability, namespace)`` before it shows a button or performs an
action. ``TokenAuthorizer`` answers with the server's single API token (``--token-file``):
that token may do everything, any other is refused. An ACL authorizer replaces it by being
set as ``app.state.authorizer``; nothing else in the UI changes.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

# Capabilities named as Nomad's ACL policies name them.
READ_JOB = "read-job"
SUBMIT_JOB = "submit-job"
DISPATCH_JOB = "dispatch-job"
ALLOC_LIFECYCLE = "alloc-lifecycle"
READ_LOGS = "read-logs"
NODE_WRITE = "node-write"
CAPABILITIES = (READ_JOB, SUBMIT_JOB, DISPATCH_JOB, ALLOC_LIFECYCLE, READ_LOGS, NODE_WRITE)


@dataclass(frozen=True)
class Principal:
    name: str
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset(CAPABILITIES))
    # The API's own principal when ACL tokens decide (so /v1 code the UI calls sees it).
    api: Any = None


class Authorizer(Protocol):
    def authenticate(self, token: str | None) -> Principal | None: ...

    def may(self, principal: Principal, capability: str, namespace: str = "default") -> bool: ...


class TokenAuthorizer:
    """The server's one management token: whoever holds it may do everything. A server
    started without a token is open, as its API is."""

    def __init__(self, expected: str | None) -> None:
        self._expected = expected

    def authenticate(self, token: str | None) -> Principal | None:
        if self._expected is None:
            return Principal("anonymous")
        if token and hmac.compare_digest(token.strip().encode(), self._expected.encode()):
            return Principal("management")
        return None

    def may(self, principal: Principal, capability: str, namespace: str = "default") -> bool:
        return capability in principal.capabilities


class AclAuthorizer:
    """ACL tokens, as the API resolves them: the bootstrap management secret, tokens made
    with `federation acl token create`, or no token where ACLs are not enforced."""

    def __init__(self, master: Any) -> None:
        self._master = master

    def authenticate(self, token: str | None) -> Principal | None:
        from federation.acl.authorizer import resolve
        from federation.api.acl import credentials
        from federation.errors import FederationError

        try:
            api = resolve(credentials(self._master), token.strip() if token else None, None,
                          time.time())
        except FederationError:
            return None
        if api.kind not in ("open", "management", "client", "anonymous"):
            return None  # node and join credentials are not for people
        return Principal(api.label, frozenset(CAPABILITIES), api)

    def may(self, principal: Principal, capability: str, namespace: str = "default") -> bool:
        from federation.acl.authorizer import Need, allowed

        if principal.api is None:
            return capability in principal.capabilities
        need = Need("node", "write") if capability == NODE_WRITE else Need(
            "namespace", capability)
        return allowed(principal.api, need, namespace)


def authorizer_of(app_state: Any, master: Any) -> Authorizer:
    found = getattr(app_state, "authorizer", None)
    return found if found is not None else AclAuthorizer(master)
