"""The agent's connection to the servers: any address works, failures move to the next one.

Calls that fail in a way that says nothing about the request (connection errors, timeouts,
503) are retried on the next address, or on the leader a 503 names, with jittered backoff,
until the call's deadline. Everything else is raised at once as a ``FederationError``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import httpx

from federation import __version__
from federation.errors import FederationError, error_from_body

_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class ServersUnreachable(FederationError):
    code = "unreachable"
    http_status = 503


class Servers:
    def __init__(self, addresses: list[str], token: str | None, verify: Any = True,
                 server_name: str | None = None) -> None:
        """``verify``: an SSL context trusting the cluster's CA; ``server_name``: the name
        every server's certificate must carry (``server.<region>.federation``), checked
        whatever address is dialled."""
        self.addresses = [a.rstrip("/") if "://" in a else f"http://{a.rstrip('/')}"
                          for a in addresses if a.strip()]
        if not self.addresses:
            raise FederationError("no server address given")
        self._current = 0
        self._lock = threading.Lock()
        headers = {"User-Agent": f"federation-agent/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._server_name = server_name
        self._http = httpx.Client(headers=headers, timeout=10.0, verify=verify,
                                  follow_redirects=False)

    def set_token(self, token: str | None) -> None:
        """Present ``token`` as the bearer from now on (None: present none)."""
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        else:
            self._http.headers.pop("Authorization", None)

    def close(self) -> None:
        self._http.close()

    def _address(self) -> str:
        with self._lock:
            return self.addresses[self._current]

    def _move_on(self, failed: str, hint: str | None = None) -> None:
        with self._lock:
            if hint:
                hint = hint.rstrip("/")
                if hint not in self.addresses:
                    self.addresses.append(hint)
                self._current = self.addresses.index(hint)
            elif self.addresses[self._current] == failed:
                self._current = (self._current + 1) % len(self.addresses)

    def call(self, method: str, path: str, *, json_body: Any = None,
             params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0, deadline: float = 30.0,
             stop: threading.Event | None = None) -> tuple[Any, httpx.Headers]:
        """One logical call; a write carries one Idempotency-Key across its retries."""
        extra = dict(headers or {})
        if method != "GET":
            extra.setdefault("Idempotency-Key", str(uuid.uuid4()))
        give_up = time.monotonic() + deadline
        attempt = 0
        last: Exception | None = None
        while True:
            address = self._address()
            try:
                extensions = ({"sni_hostname": self._server_name}
                              if self._server_name and address.startswith("https://") else None)
                response = self._http.request(method, address + path, json=json_body,
                                              params=params, headers=extra, timeout=timeout,
                                              extensions=extensions)
            except _TRANSIENT as exc:
                last = exc
                self._move_on(address)
            else:
                if response.status_code < 400:
                    return (response.json() if response.content else None), response.headers
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text
                error = error_from_body(response.status_code, body)
                if response.status_code != 503:
                    raise error
                last = error
                hint = error.details.get("leader")
                self._move_on(address, hint.get("http") if isinstance(hint, dict) else None)
            attempt += 1
            pause = random.uniform(0, min(2.0, 0.05 * 2 ** min(attempt, 6)))
            if time.monotonic() + pause > give_up or (stop is not None and stop.is_set()):
                raise ServersUnreachable(
                    f"no server answered {method} {path} within {deadline:g}s "
                    f"(tried {', '.join(self.addresses)}): {last!r}")
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
