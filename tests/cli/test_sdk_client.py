"""The SDK's contract, against scripted servers (httpx.MockTransport): what it retries, where it
goes next, what it sends, and when it gives up."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from federation.client import Client, Unreachable
from federation.errors import (
    CommitTimeout,
    Conflict,
    FederationError,
    Forbidden,
    NoLeader,
    NotFound,
    Unauthorized,
    ValidationError,
)

A, B, C = "http://10.0.0.1:4780", "http://10.0.0.2:4780", "http://10.0.0.3:4780"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A scripted cluster: answers each request with the handler and remembers it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def origins(self) -> list[str]:
        return [f"{r.url.scheme}://{r.url.host}:{r.url.port}" for r in self.requests]


def make_client(handler: Handler, addresses=(A,), **kwargs) -> tuple[Client, Recorder]:
    recorder = Recorder(handler)
    options = {"backoff": 0.001, "max_backoff": 0.01, "deadline": 5.0, **kwargs}
    client = Client(list(addresses), transport=httpx.MockTransport(recorder), **options)
    return client, recorder


def error(status: int, code: str, message: str = "nope", **extra) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, **extra}})


def script(*responses: httpx.Response) -> Handler:
    """Answer with these responses in order, then keep repeating the last one."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


JOB = {"id": "hello", "type": "batch", "groups": [{"name": "g", "count": 1}]}
SUBMITTED = httpx.Response(201, json={"id": "hello", "version": 1, "index": 7})


# -- what is retried --


@pytest.mark.parametrize("code", ["no_leader", "commit_timeout", "something_else"])
def test_a_503_is_retried_until_the_call_succeeds(code):
    client, seen = make_client(script(error(503, code), error(503, code), SUBMITTED))

    assert client.submit_job(JOB) == {"id": "hello", "version": 1, "index": 7}
    assert len(seen.requests) == 3


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (400, "invalid", ValidationError),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (500, "internal", FederationError),
        (502, "bad_gateway", FederationError),
    ],
)
def test_any_other_error_status_fails_at_once_as_its_error_class(status, code, expected):
    client, seen = make_client(script(error(status, code, "bad")))

    with pytest.raises(expected) as raised:
        client.submit_job(JOB)
    assert type(raised.value) is expected
    assert len(seen.requests) == 1


def test_a_validation_error_names_the_field():
    client, _ = make_client(script(error(400, "invalid", "must be ≥ 1", field="groups[0].count")))

    with pytest.raises(ValidationError) as raised:
        client.submit_job(JOB)
    assert raised.value.field == "groups[0].count"
    assert raised.value.message == "must be ≥ 1"


def test_an_error_body_that_is_not_json_still_raises_with_the_status():
    client, _ = make_client(script(httpx.Response(502, text="<html>bad gateway</html>")))

    with pytest.raises(FederationError) as raised:
        client.list_jobs()
    assert raised.value.http_status == 502
    assert "502" in raised.value.message


# -- where the next attempt goes --


def test_a_503_with_a_leader_hint_sends_the_retry_to_the_leader():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.3":
            return SUBMITTED
        return error(503, "no_leader", "not the leader", leader={"id": "s3", "http": C})

    client, seen = make_client(handler, addresses=(A, B, C))

    client.submit_job(JOB)
    assert seen.origins == [A, C]


def test_a_leader_hint_outside_the_given_addresses_is_followed_and_remembered():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.3":
            return httpx.Response(200, json=[])
        return error(503, "no_leader", leader={"id": "s3", "http": C + "/"})

    client, seen = make_client(handler, addresses=(A,))

    client.list_jobs()
    client.list_jobs()
    assert seen.origins == [A, C, C]
    assert client.addresses[0] == C


def test_a_503_without_a_hint_moves_on_to_the_next_address():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.1":
            return error(503, "no_leader")
        return httpx.Response(200, json=[])

    client, seen = make_client(handler, addresses=(A, B))

    client.list_nodes()
    assert seen.origins == [A, B]


def test_a_connection_error_rotates_to_the_next_address_and_stays_there():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.1":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(200, json={"status": "ok"})

    client, seen = make_client(handler, addresses=(A, B, C))

    assert client.health() == {"status": "ok"}
    assert client.health() == {"status": "ok"}
    assert seen.origins == [A, B, B]


def test_a_read_timeout_is_retried_like_a_connection_error():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.1":
            raise httpx.ReadTimeout("timed out", request=request)
        return SUBMITTED

    client, seen = make_client(handler, addresses=(A, B))

    client.submit_job(JOB)
    assert seen.origins == [A, B]
    keys = {r.headers["Idempotency-Key"] for r in seen.requests}
    assert len(keys) == 1


# -- idempotency --


def test_every_retry_of_one_write_carries_the_same_idempotency_key():
    client, seen = make_client(
        script(error(503, "commit_timeout"), error(503, "no_leader"), SUBMITTED)
    )

    client.submit_job(JOB)
    keys = [r.headers.get("Idempotency-Key") for r in seen.requests]
    assert len(keys) == 3
    assert keys[0] and keys == [keys[0]] * 3


def test_two_logical_writes_get_two_keys_and_reads_get_none():
    client, seen = make_client(script(httpx.Response(200, json={"id": "x"})))

    client.submit_job(JOB)
    client.stop_job("hello")
    client.get_job("hello")
    first, second, read = seen.requests
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert "Idempotency-Key" not in read.headers


def test_a_caller_supplied_idempotency_key_is_used_as_is():
    client, seen = make_client(script(SUBMITTED))

    client.submit_job(JOB, idempotency_key="4a1d3c52-0000-4000-8000-000000000001")
    assert seen.requests[0].headers["Idempotency-Key"] == "4a1d3c52-0000-4000-8000-000000000001"


# -- bounds --


def test_retries_stop_after_max_attempts():
    client, seen = make_client(script(error(503, "no_leader")), max_attempts=3)

    with pytest.raises(NoLeader):
        client.status()
    assert len(seen.requests) == 3


def test_retries_stop_at_the_deadline_with_an_error_that_says_so():
    client, seen = make_client(
        script(error(503, "no_leader", "no leader elected")),
        addresses=(A, B),
        max_attempts=10_000,
        deadline=0.3,
        backoff=0.02,
        max_backoff=0.05,
    )

    started = time.monotonic()
    with pytest.raises(NoLeader) as raised:
        client.submit_job(JOB)
    elapsed = time.monotonic() - started

    assert 0.2 <= elapsed < 1.0
    message = str(raised.value)
    assert message.startswith("no leader elected (gave up after ")
    assert A in message and B in message
    assert len(seen.requests) > 2


def test_commit_timeout_that_never_clears_is_reported_as_such():
    client, _ = make_client(script(error(503, "commit_timeout", "outcome unknown")), max_attempts=2)

    with pytest.raises(CommitTimeout) as raised:
        client.submit_job(JOB)
    assert "outcome unknown" in str(raised.value)


def test_when_no_server_answers_the_error_lists_the_addresses_tried():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client, seen = make_client(refuse, addresses=(A, B), max_attempts=4)

    with pytest.raises(Unreachable) as raised:
        client.list_jobs()
    assert str(raised.value).startswith(f"could not reach any server (tried {A}, {B}; 4 attempts")
    assert str(raised.value).endswith("connection refused")
    assert seen.origins == [A, B, A, B]


def test_a_real_refused_connection_is_unreachable_quickly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Client(f"127.0.0.1:{port}", deadline=2.0, max_attempts=3, backoff=0.01)

    with pytest.raises(Unreachable) as raised:
        client.health()
    assert f"http://127.0.0.1:{port}" in str(raised.value)


# -- what is sent --


def test_the_callers_trace_context_travels_as_traceparent():
    tracer = TracerProvider().get_tracer("sdk-test")
    client, seen = make_client(script(httpx.Response(200, json=[])))

    with tracer.start_as_current_span("deploy") as span:
        client.list_jobs()
    client.list_jobs()

    with_span, without_span = seen.requests
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    version, sent_trace_id, parent_id, flags = with_span.headers["traceparent"].split("-")
    assert (version, sent_trace_id, parent_id) == ("00", trace_id, span_id)
    assert int(flags, 16) & 0x01, "sampled flag set"
    assert "traceparent" not in without_span.headers


def test_the_token_is_sent_as_a_bearer_token():
    client, seen = make_client(script(httpx.Response(200, json=[])), token="s3cret")

    client.list_nodes()
    assert seen.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_no_authorization_header_without_a_token():
    client, seen = make_client(script(httpx.Response(200, json=[])))

    client.list_nodes()
    assert "Authorization" not in seen.requests[0].headers


def test_a_heartbeat_carries_the_node_token():
    client, seen = make_client(script(httpx.Response(200, json={"id": "n1"})))

    client.heartbeat("n1", "node-token-1")
    request = seen.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/nodes/n1/heartbeat")
    assert request.headers["X-Node-Token"] == "node-token-1"
    assert request.content == b"{}"


@pytest.mark.parametrize(
    "call, method, path, query",
    [
        (lambda c: c.status(), "GET", "/v1/status", {}),
        (lambda c: c.status(consistent=True), "GET", "/v1/status", {"consistent": "true"}),
        (lambda c: c.health(), "GET", "/v1/health", {}),
        (lambda c: c.register_node({"name": "n"}), "POST", "/v1/nodes", {}),
        (lambda c: c.list_nodes(), "GET", "/v1/nodes", {}),
        (
            lambda c: c.get_node("n1", consistent=True),
            "GET",
            "/v1/nodes/n1",
            {"consistent": "true"},
        ),
        (lambda c: c.drain_node("n1"), "POST", "/v1/nodes/n1/drain", {}),
        (lambda c: c.submit_job(JOB), "POST", "/v1/jobs", {}),
        (lambda c: c.list_jobs(consistent=True), "GET", "/v1/jobs", {"consistent": "true"}),
        (lambda c: c.get_job("a/b"), "GET", "/v1/jobs/a%2Fb", {}),
        (lambda c: c.stop_job("hello"), "DELETE", "/v1/jobs/hello", {}),
        (lambda c: c.list_allocations(), "GET", "/v1/allocations", {}),
        (
            lambda c: c.list_allocations(job="hello", node="n1"),
            "GET",
            "/v1/allocations",
            {"job": "hello", "node": "n1"},
        ),
    ],
)
def test_each_method_maps_to_its_endpoint(call, method, path, query):
    client, seen = make_client(script(httpx.Response(200, json={})))

    call(client)
    request = seen.requests[0]
    assert request.method == method
    assert request.url.raw_path.decode().split("?")[0] == path
    assert dict(request.url.params) == query


def test_a_submitted_spec_is_sent_as_json():
    client, seen = make_client(script(SUBMITTED))

    client.submit_job(JOB)
    request = seen.requests[0]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == JOB


# -- construction --


def test_addresses_may_be_a_comma_separated_string_without_schemes():
    client = Client(" 10.0.0.1:4780, http://10.0.0.2:4780/ ,,10.0.0.1:4780")

    assert client.addresses == [A, B]


def test_no_address_at_all_is_a_validation_error():
    with pytest.raises(ValidationError) as raised:
        Client(" , ")
    assert raised.value.field == "addresses"


def test_the_client_is_a_context_manager_that_closes_its_connections():
    with Client(A, transport=httpx.MockTransport(script(httpx.Response(200)))) as client:
        pass
    with pytest.raises(RuntimeError):
        client._http.get(A)
