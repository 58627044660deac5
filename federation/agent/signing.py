"""Server-to-agent request signatures.

A server reaches an agent's own HTTP endpoint (to read an allocation's logs) with an
HMAC-SHA256 signature keyed by the node token's hash: the agent knows its token, every server
holds the hash, and nobody else has either. The signature covers the time, the method and the
path with its query, and is accepted for ``MAX_SKEW_SECONDS``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_SKEW_SECONDS = 60.0
DATE_HEADER = "X-Federation-Date"
SIGNATURE_HEADER = "X-Federation-Signature"
ADDRESS_LABEL = "federation/agent-http"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def signature(key_hash: str, when: str, method: str, target: str) -> str:
    message = f"{when}\n{method.upper()}\n{target}".encode()
    return hmac.new(key_hash.encode(), message, hashlib.sha256).hexdigest()


def sign(key_hash: str, method: str, target: str, now: float | None = None) -> dict[str, str]:
    """Headers that authenticate ``method target`` (target = path plus ``?query``)."""
    when = f"{time.time() if now is None else now:.3f}"
    return {DATE_HEADER: when, SIGNATURE_HEADER: signature(key_hash, when, method, target)}


def verify(key_hash: str, method: str, target: str, when: str | None, given: str | None,
           now: float | None = None) -> bool:
    if not when or not given:
        return False
    try:
        moment = float(when)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - moment) > MAX_SKEW_SECONDS:
        return False
    return hmac.compare_digest(signature(key_hash, when, method, target), given)
