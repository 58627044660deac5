"""The failover transport the SDK and the agent share, against scripted servers: where each
attempt goes, what it carries, and the bounds a single request may set for itself.
(The SDK's contract on top of it is specified in tests/cli/test_sdk_client.py.)"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from federation.transport import (
    CLUSTER_URL,
    POLICY,
    STOP,
    FailoverTransport,
    RetryPolicy,
    ServersUnreachable,
)

A, B = "http://10.0.0.1:4780", "http://10.0.0.2:4780"
FAST = RetryPolicy(max_attempts=50, deadline=5.0, backoff=0.001, max_backoff=0.01)


def cluster(handler, addresses=(A, B), policy=FAST) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    transport = FailoverTransport(list(addresses), policy=policy,
                                  inner=httpx.MockTransport(record))
    return httpx.Client(base_url=CLUSTER_URL, transport=transport), seen


def no_leader(hint: str | None = None) -> httpx.Response:
    error = {"code": "no_leader", "message": "no leader"}
    if hint:
        error["leader"] = {"id": "s2", "http": hint}
    return httpx.Response(503, json={"error": error})


def test_each_attempt_goes_to_a_server_with_that_servers_host_header_and_the_same_body():
    answers = iter([no_leader(), httpx.Response(201, json={"ok": True})])
    client, seen = cluster(lambda request: next(answers))
    response = client.post("/v1/jobs?namespace=ml", content=b'{"id": "x"}',
                           headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201
    assert [str(r.url) for r in seen] == [f"{A}/v1/jobs?namespace=ml", f"{B}/v1/jobs?namespace=ml"]
    assert [r.headers["host"] for r in seen] == ["10.0.0.1:4780", "10.0.0.2:4780"]
    assert {r.read() for r in seen} == {b'{"id": "x"}'}
    assert {r.headers["idempotency-key"] for r in seen} == {"k1"}


def test_a_leader_hint_is_followed_and_remembered():
    leader = "http://10.0.0.9:4780"
    client, seen = cluster(lambda r: no_leader(leader) if r.url.host != "10.0.0.9"
                           else httpx.Response(200, json={}))
    assert client.get("/v1/status").status_code == 200
    assert client.get("/v1/status").status_code == 200
    assert [r.url.host for r in seen] == ["10.0.0.1", "10.0.0.9", "10.0.0.9"]


def test_an_answer_other_than_503_is_returned_at_once():
    client, seen = cluster(lambda r: httpx.Response(409, json={"error": {"code": "conflict"}}))
    assert client.get("/v1/jobs/x").status_code == 409
    assert len(seen) == 1


def test_a_request_may_carry_its_own_bounds():
    client, seen = cluster(lambda r: no_leader())
    one = RetryPolicy(max_attempts=2, deadline=5.0, backoff=0.001, max_backoff=0.001)
    response = client.get("/v1/status", extensions={POLICY: one})
    assert response.status_code == 503 and len(seen) == 2


def test_a_stop_event_ends_the_retries_at_once():
    stop = threading.Event()

    def refuse(request: httpx.Request) -> httpx.Response:
        stop.set()  # the caller shuts down while the first attempt is under way
        raise httpx.ConnectError("refused", request=request)

    slow = RetryPolicy(max_attempts=100, deadline=30.0, backoff=1.0, max_backoff=5.0)
    client, seen = cluster(refuse, policy=slow)
    started = time.monotonic()
    with pytest.raises(ServersUnreachable) as raised:
        client.get("/v1/agent/settings", extensions={STOP: stop})
    assert time.monotonic() - started < 1.0 and len(seen) == 1
    assert raised.value.effort.tried == (A,)
