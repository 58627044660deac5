"""The agent's connection to the servers: any address works, failures move to the next one.

Failover is the shared :class:`~federation.transport.FailoverTransport` (the SDK's too):
calls that fail in a way that says nothing about the request (connection errors, timeouts,
503) are retried on the next address, or on the leader a 503 names, with jittered backoff,
until the call's deadline. Everything else is raised at once as a ``FederationError``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from federation import __version__
from federation.errors import FederationError, error_from_body
from federation.transport import (
    CLUSTER_URL,
    POLICY,
    STOP,
    FailoverTransport,
    RetryPolicy,
    split_addresses,
)
from federation.transport import ServersUnreachable as _NoAnswer

# An agent keeps trying until the call's deadline, however many attempts that takes.
UNBOUNDED_ATTEMPTS = 1 << 30


class ServersUnreachable(FederationError):
    code = "unreachable"
    http_status = 503


class Servers:
    def __init__(self, addresses: list[str], token: str | None, verify: Any = True,
                 server_name: str | None = None) -> None:
        """``verify``: an SSL context trusting the cluster's CA; ``server_name``: the name
        every server's certificate must carry (``server.<region>.federation``), checked
        whatever address is dialled."""
        if not split_addresses(addresses):
            raise FederationError("no server address given")
        headers = {"User-Agent": f"federation-agent/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._failover = FailoverTransport(addresses, verify=verify, server_name=server_name)
        self._http = httpx.Client(base_url=CLUSTER_URL, headers=headers, timeout=10.0,
                                  transport=self._failover, follow_redirects=False)

    @property
    def addresses(self) -> list[str]:
        return self._failover.addresses

    def set_token(self, token: str | None) -> None:
        """Present ``token`` as the bearer from now on (None: present none)."""
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        else:
            self._http.headers.pop("Authorization", None)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json_body: Any = None,
             params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0, deadline: float = 30.0,
             stop: threading.Event | None = None) -> tuple[Any, httpx.Headers]:
        """One logical call; a write carries one Idempotency-Key across its retries."""
        extra = dict(headers or {})
        if method != "GET":
            extra.setdefault("Idempotency-Key", str(uuid.uuid4()))
        extensions: dict[str, Any] = {POLICY: RetryPolicy(
            max_attempts=UNBOUNDED_ATTEMPTS, deadline=deadline, backoff=0.05, max_backoff=2.0)}
        if stop is not None:
            extensions[STOP] = stop
        try:
            response = self._http.request(method, path, json=json_body, params=params,
                                          headers=extra, timeout=timeout,
                                          extensions=extensions)
        except _NoAnswer as exc:
            raise ServersUnreachable(
                f"no server answered {method} {path} within {deadline:g}s "
                f"(tried {', '.join(exc.effort.tried)}): {exc.last!r}") from exc.last
        except httpx.HTTPError as exc:  # TLS refused: final, not retried
            raise ServersUnreachable(f"{method} {path}: {exc}") from exc
        if response.status_code < 400:
            return (response.json() if response.content else None), response.headers
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        error = error_from_body(response.status_code, body)
        if response.status_code == 503:
            raise ServersUnreachable(
                f"no server answered {method} {path} within {deadline:g}s: {error}")
        raise error
