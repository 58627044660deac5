"""Bearer-token authentication of API callers and node-token checks of agents."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from federation.errors import Forbidden, Unauthorized


async def require_token(request: Request) -> None:
    """With a token configured, every endpoint but health needs ``Authorization: Bearer``.

    Async although it awaits nothing: FastAPI runs sync dependencies in a thread pool.
    """
    expected = request.app.state.master.config.token
    if expected is None:
        return
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("this server requires an API token: Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Forbidden("the API token is not valid for this cluster")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_node_token(request: Request, expected_hash: str) -> None:
    token = request.headers.get("x-node-token")
    if not token:
        raise Unauthorized("a node must present its token in X-Node-Token")
    if not hmac.compare_digest(token_hash(token), expected_hash):
        raise Forbidden("the node token does not match this node")
