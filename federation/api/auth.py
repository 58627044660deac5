"""Authentication helpers kept for routes written before ACLs.

``require_token`` is the conservative default for a route that has not declared a finer
capability: it needs a management credential (or a cluster without ACLs). New routes declare
their capability with ``federation.api.acl.require(Need(...))``.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from federation.acl.authorizer import Need
from federation.api.acl import require
from federation.errors import Forbidden, Unauthorized

require_token = require(Need("acl", "management"))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_node_token(request: Request, expected_hash: str) -> None:
    token = request.headers.get("x-node-token")
    if not token:
        raise Unauthorized("a node must present its token in X-Node-Token")
    if not hmac.compare_digest(token_hash(token), expected_hash):
        raise Forbidden("the node token does not match this node")
