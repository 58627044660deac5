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
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypedDict, cast
from urllib.parse import quote

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from federation import __version__
from federation.errors import FederationError, ValidationError, error_from_body
from federation.transport import (
    CLUSTER_URL,
    EFFORT,
    POLICY,
    Effort,
    FailoverTransport,
    RetryPolicy,
    ServersUnreachable,
    split_addresses,
)

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


# -- failover: federation.transport.FailoverTransport --


class Client:
    """A synchronous client for one federation cluster.

    ``addresses`` is one URL, a comma-separated list or a sequence of URLs of the cluster's
    servers (``host:port`` means ``http://host:port``). Every call is bounded: at most
    ``max_attempts`` attempts within ``deadline`` seconds, each attempt within ``timeout``
    seconds, with full-jitter exponential backoff starting at ``backoff`` seconds and capped
    at ``max_backoff``. Failover, leader hints and retries are the
    :class:`~federation.transport.FailoverTransport`'s, the agent's too. ``transport``
    replaces the network under it (tests use ``httpx.MockTransport``).
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
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._namespace = namespace
        # Each call is a CLIENT span (a no-op unless a tracer provider is installed or
        # given), and its context is what the server's spans continue.
        self._tracer = trace.get_tracer("federation.client", __version__,
                                        tracer_provider=tracer_provider)
        if not split_addresses(addresses):
            raise ValidationError("no server address given", field="addresses")
        if max_attempts < 1:
            raise ValidationError("must be at least 1", field="max_attempts")
        if timeout <= 0 or deadline <= 0:
            raise ValidationError("timeout and deadline must be positive", field="timeout")
        self._token = token
        self._timeout = timeout
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
        self._failover = FailoverTransport(
            addresses, inner=transport, verify=verify,
            policy=RetryPolicy(max_attempts=max_attempts, deadline=deadline, backoff=backoff,
                               max_backoff=max_backoff))
        self._http = httpx.Client(base_url=CLUSTER_URL, headers=headers,
                                  transport=self._failover, follow_redirects=False)

    # -- lifecycle --

    @property
    def addresses(self) -> list[str]:
        """The known server addresses, the one tried first leading."""
        return self._failover.addresses

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
        node_token: str | None = None,
    ) -> Registration:
        """Register a node (the agent protocol); returns its id and node token. Registering
        a name again takes that node's token (``node_token``) or a management token."""
        headers = {"X-Node-Token": node_token} if node_token else None
        body = self._write("POST", "/v1/nodes", dict(registration), idempotency_key,
                           headers=headers)
        return cast(Registration, body)

    def report_allocations(
        self, node_id: str, node_token: str, updates: Sequence[Mapping[str, Any]], *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Report what happened to a node's allocations (client fields only)."""
        headers = {"X-Node-Token": node_token}
        path = f"/v1/nodes/{_seg(node_id)}/allocations"
        return cast(dict[str, Any], self._write(
            "POST", path, {"updates": [dict(u) for u in updates]}, idempotency_key,
            headers=headers))

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

    def job_versions(self, job_id: str, *, consistent: bool = False,
                     namespace: str | None = None) -> list[dict[str, Any]]:
        """The job's kept versions, the current one first."""
        body = self._get(f"/v1/jobs/{_seg(job_id)}/versions", params=self._ns(namespace),
                         consistent=consistent)
        return list(cast(dict[str, Any], body)["versions"])

    def revert_job(self, job_id: str, version: int, *, idempotency_key: str | None = None,
                   namespace: str | None = None) -> dict[str, Any]:
        """Submit kept version ``version`` of the job again, as a new version."""
        path = self._ns_path(f"/v1/jobs/{_seg(job_id)}/revert", namespace)
        return cast(dict[str, Any], self._write("POST", path, {"version": version},
                                                idempotency_key))

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

    def job_logs(self, job_id: str, *, group: str | None = None, stderr: bool = False,
                 tail: int | None = None, namespace: str | None = None) -> str:
        """Every current copy's output, each line prefixed with its short allocation id."""
        params = {"stream": "stderr" if stderr else "stdout", **self._ns(namespace)}
        if group is not None:
            params["group"] = group
        if tail is not None:
            params["tail"] = str(tail)
        return str(self._get(f"/v1/jobs/{_seg(job_id)}/logs", params=params) or "")

    def restart_allocation(self, alloc_id: str) -> dict[str, Any]:
        """Restart the task in place on its node (no restart attempt used)."""
        return cast(dict[str, Any], self._write(
            "POST", f"/v1/allocations/{_seg(alloc_id)}/restart", {}, None))

    def signal_allocation(self, alloc_id: str, signal: str) -> dict[str, Any]:
        """Send a named signal (``SIGHUP``, ``SIGUSR1``, ...) to the task."""
        return cast(dict[str, Any], self._write(
            "POST", f"/v1/allocations/{_seg(alloc_id)}/signal", {"signal": signal}, None))

    def exec_allocation(self, alloc_id: str, command: Sequence[str], timeout: float = 60.0
                        ) -> Iterator[dict[str, Any]]:
        """Run ``command`` where the task runs (not interactive), yielding its output frames
        (``{"stdout": ...}``, ``{"stderr": ...}``) and last ``{"exit_code": n}``. Tried on
        each server in turn until one answers; never again once output began."""
        path = f"/v1/allocations/{_seg(alloc_id)}/exec"
        body = json.dumps({"command": list(command), "timeout": timeout}).encode()
        # The failover transport tries the servers until one answers (it retries only before
        # an answer, so never once output began); the call's bounds cover the command's run.
        bounds = self._failover.policy
        policy = RetryPolicy(max_attempts=bounds.max_attempts,
                             deadline=bounds.deadline + timeout + 60.0,
                             backoff=bounds.backoff, max_backoff=bounds.max_backoff)
        with self._tracer.start_as_current_span(
                f"POST {path}", kind=SpanKind.CLIENT,
                attributes={"http.request.method": "POST", "url.path": path}) as span:
            headers = {"Content-Type": "application/json"}
            propagate.inject(headers)
            try:
                with self._http.stream(
                        "POST", path, content=body, headers=headers,
                        timeout=httpx.Timeout(self._timeout, read=timeout + 60.0),
                        extensions={POLICY: policy}) as response:
                    span.set_attribute("http.response.status_code", response.status_code)
                    if response.status_code != 200:
                        response.read()
                        try:
                            payload = response.json()
                        except ValueError:
                            payload = None
                        raise error_from_body(response.status_code, payload)
                    for line in response.iter_lines():
                        if line.strip():
                            yield dict(json.loads(line))
            except ServersUnreachable as exc:
                raise Unreachable(f"no server ran the command: {exc}",
                                  tried=list(exc.effort.tried)) from exc.last
            except httpx.TransportError as exc:
                raise Unreachable(f"the command's output was cut: {_describe(exc)}") from exc

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

    # -- member Kubernetes clusters --

    def add_cluster(
        self, name: str, kubeconfig: str, *, context: str | None = None,
        pool: str | None = None, labels: Mapping[str, str] | None = None,
        image: str | None = None, idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add (or replace) a member Kubernetes cluster; ``kubeconfig`` is the file's text.
        The servers keep it sealed and never return it."""
        body: dict[str, Any] = {"kubeconfig": kubeconfig}
        for key, value in (("context", context), ("pool", pool), ("image", image)):
            if value is not None:
                body[key] = value
        if labels:
            body["labels"] = dict(labels)
        path = f"/v1/clusters/{_seg(name)}"
        return cast(dict[str, Any], self._write("PUT", path, body, idempotency_key))

    def list_clusters(self, *, consistent: bool = False) -> list[dict[str, Any]]:
        """Member clusters with their ready and down node counts."""
        return cast(list[dict[str, Any]], self._get("/v1/clusters", consistent=consistent))

    def get_cluster(self, name: str, *, consistent: bool = False) -> dict[str, Any]:
        return cast(dict[str, Any], self._get(f"/v1/clusters/{_seg(name)}",
                                              consistent=consistent))

    def remove_cluster(self, name: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Remove a member cluster: its nodes leave the pool and their work moves."""
        path = f"/v1/clusters/{_seg(name)}"
        return cast(dict[str, Any], self._write("DELETE", path, None, idempotency_key))

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
        with self._tracer.start_as_current_span(
                f"{method} {path}", kind=SpanKind.CLIENT,
                attributes={"http.request.method": method, "url.path": path}):
            return self._traced_call(method, path, params, json_body, headers)

    def _traced_call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        request_headers: dict[str, str] = dict(headers or {})
        # The attempt's span (a child of the caller's current span) travels as
        # ``traceparent``, so the server's spans are its children.
        propagate.inject(request_headers)
        content = None
        if json_body is not None:
            content = json.dumps(json_body).encode()
            request_headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, path, params=params or None, content=content,
                                          headers=request_headers, timeout=self._timeout)
        except ServersUnreachable as exc:
            reason = _describe(exc.last) if isinstance(exc.last, httpx.HTTPError) else str(
                exc.last)
            raise Unreachable(f"{exc}: {reason}", tried=list(exc.effort.tried)) from exc.last
        except httpx.ConnectError as exc:  # TLS: the transport does not retry it
            raise Unreachable(
                f"{self.addresses[0]}: TLS: the server's certificate is not trusted "
                f"({_describe(exc)}); give the cluster's CA certificate with FEDERATION_CACERT"
            ) from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"{self.addresses[0]}: {_describe(exc)}") from exc
        # An error answer raises from _result: the span records it and is marked an error.
        span = trace.get_current_span()
        span.set_attribute("http.response.status_code", response.status_code)
        span.set_attribute("server.address", str(response.request.url.copy_with(
            path="/", query=None)).rstrip("/"))
        return self._result(response)

    def _result(self, response: httpx.Response) -> Any:
        if response.is_success:
            if not response.content:
                return None
            if response.headers.get("content-type", "").startswith("text/plain"):
                return response.text
            try:
                return response.json()
            except ValueError as exc:
                raise FederationError(
                    f"{response.url.host} answered HTTP {response.status_code} with a body "
                    "that is not JSON") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        error = error_from_body(response.status_code, body)
        if type(error) is FederationError:
            # An unstructured answer (a proxy's page, a crash): keep the status it came with.
            error.http_status = response.status_code
        effort = response.extensions.get(EFFORT)
        if isinstance(effort, Effort):
            raise _gave_up(error, effort) from None
        raise error


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


def _gave_up(last: FederationError, effort: Effort) -> FederationError:
    """The last error, reworded to say how hard the client tried."""
    error = type(last)(
        f"{last.message} (gave up after {effort.describe()}; tried {', '.join(effort.tried)})",
        field=last.field,
        **last.details,
    )
    error.http_status = last.http_status
    return error
