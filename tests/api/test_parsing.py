"""Bodies are decoded with bounds and off the event loop, on real servers."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.harness import Cluster
from tests.specs.test_documents import billion_laughs

HOSTILE = [
    # (body, content type, words in the message)
    ("[" * 100_000 + "]" * 100_000, "application/json", "nested deeper"),
    ('{"id": ' + "9" * 5000 + "}", "application/json", "5000 digits"),
    (billion_laughs(), "application/yaml", "expands"),
    ("a: &a [1, *a]", "application/yaml", "refers to itself"),
    ('{"id": NaN}', "application/json", "NaN"),
]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/plan", "/v1/nodes",
                                  "/v1/queues/q", "/v1/snapshot"])
@pytest.mark.parametrize(("body", "content_type", "words"), HOSTILE)
def test_hostile_documents_get_a_400_naming_the_problem_on_every_route(
        single: Cluster, path: str, body: str, content_type: str, words: str) -> None:
    server = single.servers[0]
    method = "PUT" if path.startswith("/v1/queues") else "POST"
    response = httpx.request(method, server.url + path, content=body, timeout=30,
                             headers={"content-type": content_type})
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid" and words in error["message"]
    assert error["field"]


def _big_yaml(items: int = 7_000) -> str:
    """About 0.9 MB of YAML with many small nodes: what is slowest to parse per byte."""
    lines = ["id: big", "type: batch", "x:"]
    for half in ("a", "b"):
        lines.append(f"  {half}:")
        lines += [f"    - {{name: n{i}, value: {i}, labels: {{k: v, c: [1, 2, 3]}}}}"
                  for i in range(items)]
    return "\n".join(lines) + "\n"


def test_three_concurrent_large_yaml_bodies_stall_neither_health_nor_leadership(
        cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    term = leader.status()["term"]
    body = _big_yaml()
    assert 800_000 < len(body) < 1 << 20
    answers: list[int] = []

    def submit(text: str = body) -> None:
        response = httpx.post(leader.url + "/v1/jobs", content=text, timeout=60,
                              headers={"content-type": "application/yaml"})
        answers.append(response.status_code)

    # Start the parser processes first (a body just big enough to be sent to them), so the
    # measurement is of parsing, not of start-up.
    warmers = [threading.Thread(target=submit, args=(_big_yaml(40),)) for _ in range(2)]
    for warmer in warmers:
        warmer.start()
    for warmer in warmers:
        warmer.join(60)
    answers.clear()
    senders = [threading.Thread(target=submit) for _ in range(3)]
    for sender in senders:
        sender.start()
    latencies = []
    with httpx.Client(timeout=5) as client:
        while any(s.is_alive() for s in senders):
            start = time.perf_counter()
            assert client.get(leader.url + "/v1/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
    for sender in senders:
        sender.join(60)
    assert answers == [400, 400, 400]  # read, parsed and judged: "x" is not a job field
    assert len(latencies) >= 3
    assert max(latencies) < 0.5, f"health took {sorted(latencies)[-5:]}s while parsing"
    after = leader.status()
    assert after["leader"] == leader.id and after["term"] == term
