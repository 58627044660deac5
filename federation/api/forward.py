"""Forwarding a call that only the leader may answer, from a follower, over HTTP.

Writes reach the leader through Raft (pysyncobj forwards a follower's command). A heartbeat is
not a write: it lives in the leader's memory, so a follower hands the call itself to the
leader, with the caller's node credential, and returns the leader's answer. A forwarded call
is never forwarded again (the marker header): a server that is not the leader any more
answers 503 with the leader it knows, and the caller tries again.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from federation.errors import FederationError, NoLeader, error_from_body

FORWARDED_HEADER = "x-federation-forwarded-by"
# Only what the leader needs to authenticate and trace the call.
PASSED_HEADERS = ("x-node-token", "authorization", "traceparent", "tracestate")
FORWARD_TIMEOUT = 5.0


def _client(master: Any) -> httpx.AsyncClient:
    client = getattr(master, "_forward_client", None)
    if client is None:
        verify: Any = True
        cfg = master.config
        if cfg.tls_ca:
            from federation.tls import client_context

            context = client_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
            # The address comes from the replicated state, the chain from our CA: a server's
            # certificate names its region, which a peer does not know.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_REQUIRED
            verify = context
        client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT, verify=verify,
                                   follow_redirects=False,
                                   limits=httpx.Limits(max_connections=64,
                                                       max_keepalive_connections=64))
        master._forward_client = client
    return client


async def to_leader(master: Any, method: str, path: str, headers: Any,
                    json_body: Any = None) -> Any:
    """Send ``method path`` to the leader and return its JSON answer (its error raised as
    ours). Raises NoLeader when this call was itself forwarded, or no leader is known."""
    if headers.get(FORWARDED_HEADER):
        raise NoLeader("this server is not the leader any more: try again",
                       leader=master.leader_hint())
    hint = master.leader_hint()
    if hint is None or not hint.get("http"):
        raise NoLeader("no Raft leader is known right now", leader=hint)
    passed = {k: v for k, v in headers.items() if k.lower() in PASSED_HEADERS}
    passed[FORWARDED_HEADER] = master.config.id
    try:
        response = await _client(master).request(
            method, hint["http"].rstrip("/") + path, headers=passed, json=json_body)
    except httpx.HTTPError as exc:
        raise NoLeader(f"the leader did not answer: {exc!r}", leader=hint) from None
    try:
        body = response.json()
    except ValueError:
        raise FederationError(f"the leader answered {response.status_code} without "
                              "JSON") from None
    if response.status_code >= 400:
        raise error_from_body(response.status_code, body)
    return body


async def close(master: Any) -> None:
    client = getattr(master, "_forward_client", None)
    if client is not None:
        master._forward_client = None
        await client.aclose()
