"""One failover policy for everything that calls the servers: an ``httpx`` transport.

:class:`FailoverTransport` sends each request to the servers it knows, in turn, and follows
the leader a 503 names. Callers (the SDK, the agent) make requests against
:data:`CLUSTER_URL` plus a path; the transport picks the server. What it retries is only what
says nothing about the request itself: a connection that failed or timed out, an answer 503
(no leader yet, a commit whose outcome is unknown). Every other answer is returned at once.
Retries back off with full jitter (``tenacity``), within the call's attempt and time bounds;
when they run out the last 503 is returned, or :class:`ServersUnreachable` raised. Writes
stay safe to retry because callers send one ``Idempotency-Key`` per logical write.

::

    exceptions raised                      httpx.TransportError
                                           ├── ServersUnreachable   (every attempt failed)
                                           └── httpx.ConnectError   (TLS: final, not retried)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import tenacity

CLUSTER_URL = "http://federation.cluster"  # the placeholder origin requests are made against
RETRIED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
EFFORT = "federation.failover"  # response extension: how the answer was reached
POLICY = "federation.retry_policy"  # request extension: this call's own RetryPolicy
STOP = "federation.stop"  # request extension: a threading.Event that ends the retries


def normalize(address: str) -> str:
    address = address.strip().rstrip("/")
    if address and "://" not in address:
        address = "http://" + address
    return address


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    raw = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    out: list[str] = []
    for item in raw:
        address = normalize(item)
        if address and address not in out:
            out.append(address)
    return out


@dataclass(frozen=True)
class Effort:
    """How hard a call tried: the servers it dialled, attempts and seconds."""

    tried: tuple[str, ...]
    attempts: int
    elapsed: float

    def describe(self) -> str:
        return (f"{self.attempts} attempt{'s' if self.attempts != 1 else ''} "
                f"in {self.elapsed:.1f}s")


class ServersUnreachable(httpx.TransportError):
    """No server answered within the call's bounds; ``effort`` says what was tried."""

    def __init__(self, message: str, *, request: httpx.Request, effort: Effort,
                 last: Exception) -> None:
        super().__init__(message, request=request)
        self.effort = effort
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of one call: attempts, overall seconds, and the jittered backoff."""

    max_attempts: int = 8
    deadline: float = 30.0
    backoff: float = 0.1
    max_backoff: float = 2.0


class _Again(Exception):
    """This attempt failed in a way worth another try (internal to the retry loop)."""


class FailoverTransport(httpx.BaseTransport):
    """Tries the known servers in turn and follows leader hints (see the module doc).

    ``inner`` sends one request to one server (by default ``httpx.HTTPTransport``, given
    ``verify``); ``server_name`` is the TLS name every server's certificate must carry,
    whatever address is dialled. A request may carry its own bounds (extension
    :data:`POLICY`) and an event that ends its retries early (:data:`STOP`: an agent
    shutting down).
    """

    def __init__(self, addresses: str | Sequence[str], *, policy: RetryPolicy | None = None,
                 inner: httpx.BaseTransport | None = None, verify: Any = True,
                 server_name: str | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self._addresses = split_addresses(addresses)
        if not self._addresses:
            raise ValueError("no server address given")
        self.policy = policy or RetryPolicy()
        self._inner = inner or httpx.HTTPTransport(verify=verify)
        self._server_name = server_name
        self._sleep = sleep or time.sleep
        self._current = 0
        self._lock = threading.Lock()

    @property
    def addresses(self) -> list[str]:
        """The known servers, the one tried first leading."""
        with self._lock:
            return self._addresses[self._current:] + self._addresses[:self._current]

    def close(self) -> None:
        self._inner.close()

    # -- choosing a server ---------------------------------------------------------------
    def _pick(self) -> str:
        with self._lock:
            return self._addresses[self._current]

    def _prefer(self, address: str) -> None:
        with self._lock:
            if address not in self._addresses:
                self._addresses.append(address)
            self._current = self._addresses.index(address)

    def _rotate_from(self, address: str) -> None:
        with self._lock:
            # Another thread may already have moved on; only advance past the failed address.
            if self._addresses[self._current] == address:
                self._current = (self._current + 1) % len(self._addresses)

    # -- one call ------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        policy = request.extensions.get(POLICY) or self.policy
        halt: threading.Event | None = request.extensions.get(STOP)
        sleep: Callable[[float], Any] = self._sleep if halt is None else halt.wait
        started = time.monotonic()
        tried: list[str] = []
        outcome: list[httpx.Response | Exception] = []

        def remaining() -> float:
            return policy.deadline - (time.monotonic() - started)

        jitter = tenacity.wait_random_exponential(multiplier=policy.backoff,
                                                  max=policy.max_backoff)

        def wait(state: tenacity.RetryCallState) -> float:
            return max(0.0, min(jitter(state), remaining()))

        def stop(state: tenacity.RetryCallState) -> bool:
            return (state.attempt_number >= policy.max_attempts
                    or remaining() - (state.upcoming_sleep or 0.0) <= 0.0
                    or (halt is not None and halt.is_set()))

        retrying = tenacity.Retrying(stop=stop, wait=wait, sleep=sleep,
                                     retry=tenacity.retry_if_exception_type(_Again),
                                     reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    address = self._pick()
                    if address not in tried:
                        tried.append(address)
                    return self._attempt(request, address, remaining(), outcome)
        except _Again:
            pass
        effort = Effort(tuple(tried), retrying.statistics.get("attempt_number", 1),
                        time.monotonic() - started)
        last = outcome[-1]
        if isinstance(last, httpx.Response):
            last.extensions[EFFORT] = effort
            return last
        raise ServersUnreachable(
            f"could not reach any server (tried {', '.join(tried)}; {effort.describe()})",
            request=request, effort=effort, last=last) from last

    def _attempt(self, request: httpx.Request, address: str, remaining: float,
                 outcome: list[httpx.Response | Exception]) -> httpx.Response:
        sent = self._to(request, address, remaining)
        try:
            response = self._inner.handle_request(sent)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc):
                raise  # final: another attempt would meet the same certificate
            outcome.append(exc)
            self._rotate_from(address)
            raise _Again from exc
        except RETRIED as exc:
            outcome.append(exc)
            self._rotate_from(address)
            raise _Again from exc
        if response.status_code != 503:
            return response
        response.read()
        response.close()
        outcome.append(response)
        hint = _leader_hint(response)
        if hint:
            self._prefer(hint)
        else:
            self._rotate_from(address)
        raise _Again

    def _to(self, request: httpx.Request, address: str, remaining: float) -> httpx.Request:
        """The request as sent to ``address``: its path and query under that origin, its
        body and headers (the Host header recomputed), each timeout capped by the time the
        call has left."""
        base = httpx.URL(address)
        url = base.copy_with(raw_path=base.raw_path.rstrip(b"/") + request.url.raw_path)
        # A request built from a stream gets no Host header of its own: name this server.
        headers = [(b"Host", url.netloc),
                   *((k, v) for k, v in request.headers.raw if k.lower() != b"host")]
        extensions = {k: v for k, v in request.extensions.items() if k not in (POLICY, STOP)}
        timeout = dict(extensions.get("timeout") or {})
        cap = max(0.01, remaining)
        extensions["timeout"] = {key: cap if value is None else min(value, cap)
                                 for key, value in timeout.items()} or {
            "connect": cap, "read": cap, "write": cap, "pool": cap}
        if self._server_name and address.startswith("https://"):
            extensions["sni_hostname"] = self._server_name
        return httpx.Request(request.method, url, headers=headers, stream=request.stream,
                             extensions=extensions)


def _leader_hint(response: httpx.Response) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    leader = error.get("leader") if isinstance(error, dict) else None
    http = leader.get("http") if isinstance(leader, dict) else None
    return normalize(http) if isinstance(http, str) and normalize(http) else None
