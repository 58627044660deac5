"""Python SDK for the federation HTTP API.

``Client`` talks to any of the servers of a cluster: it retries what is known to be transient
(connection errors and 503 answers, nothing else) with bounded, jittered backoff, follows the
leader hint a 503 carries, sends one ``Idempotency-Key`` per logical write (reused across that
write's retries, so a retried write is applied once), propagates the caller's OpenTelemetry
context as W3C ``traceparent``, and raises the ``federation.errors`` tree::

    with Client("http://10.0.0.1:4780,http://10.0.0.2:4780", token="...") as fed:
        fed.submit_job({"id": "hello", "type": "batch", "groups": [...]})
        print(fed.get_job("hello")["status"])
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast
from urllib.parse import quote

import httpx
import tenacity
from opentelemetry import propagate

from federation import __version__
from federation.errors import FederationError, ValidationError, error_from_body

__all__ = [
    "Allocation",
    "Client",
    "Job",
    "Node",
    "Registration",
    "Resources",
    "ServerInfo",
    "Status",
    "Unreachable",
    "WriteResult",
]

DEFAULT_ADDRESS = "http://127.0.0.1:4780"


class Unreachable(FederationError):
    """No server answered: every address tried failed to connect or timed out."""

    code = "unreachable"
    http_status = 503


# -- response shapes (documentation for callers and type checkers; values are plain dicts) --


class Resources(TypedDict, total=False):
    cpu_milli: int
    memory_mib: int
    gpu: int


class ServerInfo(TypedDict, total=False):
    id: str
    raft: str
    http: str
    role: str


class Status(TypedDict, total=False):
    self: str
    leader: str | None
    term: int
    commit_index: int
    servers: list[ServerInfo]


class Registration(TypedDict):
    id: str
    token: str


class WriteResult(TypedDict, total=False):
    id: str
    version: int
    index: int


class Node(TypedDict, total=False):
    id: str
    name: str
    pool: str
    provider: str
    region: str
    zone: str
    rack: str
    labels: dict[str, str]
    capacity: Resources
    allocated: Resources
    status: str
    draining: bool
    last_heartbeat: float


class Job(TypedDict, total=False):
    id: str
    type: str
    priority: int
    queue: str
    schedule: str | None
    depends_on: list[str]
    groups: list[dict[str, Any]]
    version: int
    status: str
    stopped: bool
    allocations: dict[str, int]
    submit_time: float
    create_index: int
    modify_index: int


class Allocation(TypedDict, total=False):
    id: str
    job_id: str
    group: str
    index: int
    node_id: str
    desired_status: str
    client_status: str
    resources: Resources


# -- retry policy --

# Only failures that say nothing about the request itself are retried. A bad URL scheme, a
# proxy refusal or a malformed request would fail the same way again.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _Retryable(Exception):
    """Internal wrapper: this attempt failed in a way worth another try."""

    def __init__(self, error: FederationError) -> None:
        super().__init__(error.message)
        self.error = error


def _normalize(address: str) -> str:
    address = address.strip().rstrip("/")
    if address and "://" not in address:
        address = "http://" + address
    return address


def _split_addresses(addresses: str | Sequence[str]) -> list[str]:
    raw = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    out: list[str] = []
    for item in raw:
        address = _normalize(item)
        if address and address not in out:
            out.append(address)
    return out


class _Deadline:
    """Stop and wait strategies for tenacity that share one overall deadline."""

    def __init__(self, max_attempts: int, seconds: float, backoff: float, max_backoff: float):
        self.max_attempts = max_attempts
        self.seconds = seconds
        self.started = time.monotonic()
        self._jitter = tenacity.wait_random_exponential(multiplier=backoff, max=max_backoff)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait(self, retry_state: tenacity.RetryCallState) -> float:
        # Never sleep past the deadline: the stop check then sees no time left and gives up.
        return max(0.0, min(self._jitter(retry_state), self.remaining()))

    def stop(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self.max_attempts:
            return True
        upcoming = retry_state.upcoming_sleep or 0.0
        return self.remaining() - upcoming <= 0.0


class Client:
    """A synchronous client for one federation cluster.

    ``addresses`` is one URL, a comma-separated list or a sequence of URLs of the cluster's
    servers (``host:port`` means ``http://host:port``). Every call is bounded: at most
    ``max_attempts`` attempts within ``deadline`` seconds, each attempt within ``timeout``
    seconds, with full-jitter exponential backoff starting at ``backoff`` seconds and capped
    at ``max_backoff``. ``transport`` replaces the network (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        addresses: str | Sequence[str] = DEFAULT_ADDRESS,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        max_attempts: int = 8,
        deadline: float = 30.0,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        cacert: str | None = None,
        namespace: str | None = None,
    ) -> None:
        self._namespace = namespace
        self._addresses = _split_addresses(addresses)
        if not self._addresses:
            raise ValidationError("no server address given", field="addresses")
        if max_attempts < 1:
            raise ValidationError("must be at least 1", field="max_attempts")
        if timeout <= 0 or deadline <= 0:
            raise ValidationError("timeout and deadline must be positive", field="timeout")
        self._token = token
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._deadline = deadline
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._current = 0
        self._lock = threading.Lock()
        headers = {"User-Agent": f"federation-client/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: Any = True
        if cacert:
            # Trust the cluster's own CA (federation tls ca create), not the system store.
            from federation.tls import client_context

            try:
                verify = client_context(cacert)
            except (OSError, ValueError) as exc:
                raise ValidationError(f"cannot load the CA certificate {cacert!r}: {exc}",
                                      field="cacert") from None
        self._http = httpx.Client(headers=headers, transport=transport, follow_redirects=False,
                                  verify=verify)

    # -- lifecycle --

    @property
    def addresses(self) -> list[str]:
        """The known server addresses, the one tried first leading."""
        with self._lock:
            return self._addresses[self._current :] + self._addresses[: self._current]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- cluster --

    def status(self, *, consistent: bool = False) -> Status:
        """Servers, their roles, the leader, term and commit index."""
        return cast(Status, self._get("/v1/status", consistent=consistent))

    def health(self) -> dict[str, Any]:
        """Liveness of the server answering (``{"status": "ok", ...}``)."""
        return cast(dict[str, Any], self._get("/v1/health"))

    # -- nodes --

    def register_node(
        self,
        registration: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Registration:
        """Register a node (the agent protocol); returns its id and node token."""
        body = self._write("POST", "/v1/nodes", dict(registration), idempotency_key)
        return cast(Registration, body)

    def heartbeat(
        self, node_id: str, node_token: str, *, idempotency_key: str | None = None
    ) -> Node:
        """Report a node alive; returns the node's standing: ``id``, ``name``, ``status``,
        ``draining``, ``last_heartbeat``, ``heartbeat_ttl`` (not committed: see the API)."""
        headers = {"X-Node-Token": node_token}
        path = f"/v1/nodes/{_seg(node_id)}/heartbeat"
        return cast(Node, self._write("POST", path, {}, idempotency_key, headers=headers))

    def list_nodes(self, *, consistent: bool = False) -> list[Node]:
        return cast(list[Node], self._get("/v1/nodes", consistent=consistent))

    def get_node(self, node_id: str, *, consistent: bool = False) -> Node:
        return cast(Node, self._get(f"/v1/nodes/{_seg(node_id)}", consistent=consistent))

    def drain_node(self, node_id: str, *, deadline: str | float | None = None,
                   idempotency_key: str | None = None) -> Node:
        """Mark a node draining: nothing new is placed there, services move away; batch
        work still running after ``deadline`` (seconds or "10m") is stopped and re-placed."""
        path = f"/v1/nodes/{_seg(node_id)}/drain"
        body = {} if deadline is None else {"deadline": deadline}
        return cast(Node, self._write("POST", path, body, idempotency_key))

    def undrain_node(self, node_id: str, *, idempotency_key: str | None = None) -> Node:
        """End a drain: the node is eligible for new work again."""
        path = f"/v1/nodes/{_seg(node_id)}/undrain"
        return cast(Node, self._write("POST", path, {}, idempotency_key))

    # -- jobs --

    def _ns(self, namespace: str | None) -> dict[str, str]:
        """``?namespace=`` for a job call: the call's own, else the client's, else none
        (the server's ``default``)."""
        chosen = namespace if namespace is not None else self._namespace
        return {} if chosen is None else {"namespace": chosen}

    def _ns_path(self, path: str, namespace: str | None) -> str:
        query = self._ns(namespace)
        return f"{path}?namespace={quote(query['namespace'], safe='*')}" if query else path

    def submit_job(
        self, spec: Mapping[str, Any], *, idempotency_key: str | None = None,
        namespace: str | None = None,
    ) -> WriteResult:
        """Create or update a job from its spec; returns its id, version and commit index.
        A Kubernetes manifest (``apiVersion``/``kind``) is accepted as well."""
        path = self._ns_path("/v1/jobs", namespace)
        return cast(WriteResult, self._write("POST", path, dict(spec), idempotency_key))

    def plan_job(self, spec: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """What submitting ``spec`` would place where (nothing is committed)."""
        return cast(dict[str, Any], self._call("POST", "/v1/jobs/plan", json_body=dict(spec),
                                               params=self._ns(namespace)))

    def list_jobs(self, *, consistent: bool = False, namespace: str | None = None) -> list[Job]:
        """Jobs of one namespace (``namespace="*"``: of all)."""
        return cast(list[Job], self._get("/v1/jobs", params=self._ns(namespace),
                                         consistent=consistent))

    def get_job(self, job_id: str, *, consistent: bool = False,
                namespace: str | None = None) -> Job:
        return cast(Job, self._get(f"/v1/jobs/{_seg(job_id)}", params=self._ns(namespace),
                                   consistent=consistent))

    def stop_job(self, job_id: str, *, idempotency_key: str | None = None,
                 namespace: str | None = None) -> WriteResult:
        """Stop a job: its allocations are stopped and nothing new is placed."""
        path = self._ns_path(f"/v1/jobs/{_seg(job_id)}", namespace)
        return cast(WriteResult, self._write("DELETE", path, None, idempotency_key))

    def scale_job(self, job_id: str, count: int, group: str | None = None, *,
                  idempotency_key: str | None = None,
                  namespace: str | None = None) -> dict[str, Any]:
        """Set one group's count (the only group when ``group`` is None)."""
        body: dict[str, Any] = {"count": count}
        if group is not None:
            body["group"] = group
        path = self._ns_path(f"/v1/jobs/{_seg(job_id)}/scale", namespace)
        return cast(dict[str, Any], self._write("POST", path, body, idempotency_key))

    # -- allocations --

    def list_allocations(
        self,
        job: str | None = None,
        node: str | None = None,
        *,
        consistent: bool = False,
        namespace: str | None = None,
    ) -> list[Allocation]:
        params = {k: v for k, v in (("job", job), ("node", node)) if v is not None}
        params.update(self._ns(namespace))
        allocs = self._get("/v1/allocations", params=params, consistent=consistent)
        return cast(list[Allocation], allocs)

    def get_allocation(self, alloc_id: str, *, consistent: bool = False) -> Allocation:
        return cast(Allocation, self._get(f"/v1/allocations/{_seg(alloc_id)}",
                                          consistent=consistent))

    def stop_allocation(self, alloc_id: str, *,
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """Stop one allocation; the scheduler places a replacement if its job wants one."""
        path = f"/v1/allocations/{_seg(alloc_id)}/stop"
        return cast(dict[str, Any], self._write("POST", path, {}, idempotency_key))

    # -- events --

    def events(self, index: int = 0, *, wait: float = 0.0,
               topics: Sequence[str] = ("job", "allocation", "node")) -> list[dict[str, Any]]:
        """Jobs, allocations and nodes changed after ``index`` (oldest first), waiting up to
        ``wait`` seconds for one; ask again from the last event's ``index``."""
        params = {"index": str(index), "wait": str(wait), "topic": ",".join(topics)}
        return cast(list[dict[str, Any]], self._get("/v1/events", params=params))

    # -- queues --

    def apply_queue(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a fair-share queue (name, weight, optional quota)."""
        name = str(spec.get("name", ""))
        return cast(dict[str, Any], self._write("PUT", f"/v1/queues/{_seg(name)}", dict(spec),
                                                None))

    def list_queues(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("/v1/queues"))

    # -- backup --

    def snapshot(self) -> dict[str, Any]:
        """The whole cluster state as JSON (read after a barrier, so it is current)."""
        return cast(dict[str, Any], self._get("/v1/snapshot"))

    def restore(
        self, snapshot: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Replace the whole cluster state with ``snapshot``, through Raft."""
        return cast(dict[str, Any], self._write("POST", "/v1/snapshot", dict(snapshot),
                                                idempotency_key))

    # -- pools and the autoscaler --

    def apply_pool(
        self, spec: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create or replace a pool from its spec (``PUT /v1/pools/{name}``)."""
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError("a pool spec needs a name", field="name")
        path = f"/v1/pools/{_seg(name)}"
        return cast(dict[str, Any], self._write("PUT", path, dict(spec), idempotency_key))

    def list_pools(self, *, consistent: bool = False) -> list[dict[str, Any]]:
        """Pools with live node counts and hourly cost."""
        return cast(list[dict[str, Any]], self._get("/v1/pools", consistent=consistent))

    def get_pool(self, name: str, *, consistent: bool = False) -> dict[str, Any]:
        return cast(dict[str, Any], self._get(f"/v1/pools/{_seg(name)}", consistent=consistent))

    def delete_pool(self, name: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Forget a pool; the autoscaler stops buying from it."""
        path = f"/v1/pools/{_seg(name)}"
        return cast(dict[str, Any], self._write("DELETE", path, None, idempotency_key))

    def autoscaler_activities(
        self, *, limit: int = 100, pool: str | None = None, consistent: bool = False
    ) -> list[dict[str, Any]]:
        """What the autoscaler decided, why, its hourly cost and what happened; newest first."""
        params = {"limit": str(limit)}
        if pool is not None:
            params["pool"] = pool
        return cast(list[dict[str, Any]], self._get(
            "/v1/autoscaler/activities", params=params, consistent=consistent))

    # -- access control --

    def acl_bootstrap(self) -> dict[str, Any]:
        """The first management token (once per cluster); its ``secret_id`` is shown once."""
        return cast(dict[str, Any], self._write("POST", "/v1/acl/bootstrap", {}, None))

    def apply_acl_policy(self, name: str, rules: str | Mapping[str, Any],
                         description: str = "") -> dict[str, Any]:
        """Create or replace a policy; ``rules`` as HCL/YAML/JSON text or a mapping."""
        body = {"rules": rules if isinstance(rules, str) else dict(rules),
                "description": description}
        return cast(dict[str, Any], self._write("PUT", f"/v1/acl/policy/{_seg(name)}", body,
                                                None))

    def acl_policies(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("/v1/acl/policies"))

    def delete_acl_policy(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._write("DELETE", f"/v1/acl/policy/{_seg(name)}",
                                                None, None))

    def create_acl_token(self, name: str, policies: Sequence[str] = (), *,
                         type: str = "client", ttl: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "type": type, "policies": list(policies)}
        if ttl:
            body["ttl"] = ttl
        return cast(dict[str, Any], self._write("POST", "/v1/acl/tokens", body, None))

    def acl_tokens(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("/v1/acl/tokens"))

    def delete_acl_token(self, accessor_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._write(
            "DELETE", f"/v1/acl/token/{_seg(accessor_id)}", None, None))

    def acl_token_self(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._get("/v1/acl/token/self"))

    # -- plumbing --

    def _get(
        self, path: str, *, params: Mapping[str, str] | None = None, consistent: bool = False
    ) -> Any:
        query = dict(params or {})
        if consistent:
            query["consistent"] = "true"
        return self._call("GET", path, params=query)

    def _write(
        self,
        method: str,
        path: str,
        body: Any,
        idempotency_key: str | None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        # One key per logical write, reused by every retry: the server uses it as the command
        # id, so a write whose first attempt committed but whose answer was lost applies once.
        extra = dict(headers or {})
        extra["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        return self._call(method, path, json_body=body, headers=extra)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        deadline = _Deadline(self._max_attempts, self._deadline, self._backoff, self._max_backoff)
        tried: list[str] = []
        retrying = tenacity.Retrying(
            stop=deadline.stop,
            wait=deadline.wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    address = self._pick()
                    if address not in tried:
                        tried.append(address)
                    timeout = max(0.01, min(self._timeout, deadline.remaining()))
                    return self._attempt(address, method, path, params, json_body, headers, timeout)
        except _Retryable as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise _gave_up(exc.error, tried, attempts, deadline.elapsed()) from exc.error
        raise FederationError("retry loop ended without an outcome")  # pragma: no cover

    def _attempt(
        self,
        address: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        timeout: float,
    ) -> Any:
        request_headers: dict[str, str] = dict(headers or {})
        # The caller's trace context travels with every attempt, so the server's span is a
        # child of the caller's current span.
        propagate.inject(request_headers)
        content = None
        if json_body is not None:
            content = json.dumps(json_body).encode()
            request_headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method,
                address + path,
                params=params or None,
                content=content,
                headers=request_headers,
                timeout=timeout,
            )
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc):
                # Final: another attempt would meet the same certificate.
                raise Unreachable(
                    f"{address}: TLS: the server's certificate is not trusted ({_describe(exc)}); "
                    "give the cluster's CA certificate with FEDERATION_CACERT"
                ) from exc
            self._rotate_from(address)
            raise _Retryable(Unreachable(f"{address}: {_describe(exc)}")) from exc
        except _RETRYABLE_TRANSPORT as exc:
            self._rotate_from(address)
            raise _Retryable(Unreachable(f"{address}: {_describe(exc)}")) from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"{address}: {_describe(exc)}") from exc
        return self._result(address, response)

    def _result(self, address: str, response: httpx.Response) -> Any:
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise FederationError(
                    f"{address} answered HTTP {response.status_code} with a body that is not JSON"
                ) from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        error = error_from_body(response.status_code, body)
        if type(error) is FederationError:
            # An unstructured answer (a proxy's page, a crash): keep the status it came with.
            error.http_status = response.status_code
        if response.status_code != 503:
            raise error
        hint = error.details.get("leader")
        hint_http = hint.get("http") if isinstance(hint, dict) else None
        if isinstance(hint_http, str) and _normalize(hint_http):
            self._prefer(_normalize(hint_http))
        else:
            self._rotate_from(address)
        raise _Retryable(error)

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


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def _gave_up(
    last: FederationError, tried: list[str], attempts: int, elapsed: float
) -> FederationError:
    """The last error, reworded to say how hard the client tried."""
    effort = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f}s"
    if isinstance(last, Unreachable):
        reason = last.message.split(": ", 1)[-1]
        return Unreachable(
            f"could not reach any server (tried {', '.join(tried)}; {effort}): {reason}",
            tried=tried,
        )
    error = type(last)(
        f"{last.message} (gave up after {effort}; tried {', '.join(tried)})",
        field=last.field,
        **last.details,
    )
    error.http_status = last.http_status
    return error
