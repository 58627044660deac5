"""An agent's status report holds typed, size-capped fields only."""

from __future__ import annotations

import httpx
import pytest

from federation.api.reports import AllocationUpdate
from federation.state.machine import ALLOC_CLIENT_FIELDS
from tests.harness import Cluster, wait_for

# About 516 bytes: aliases that expand to about 600 KB of text inside `message`.
ALIAS_REPORT = (
    'a: &a "' + "x" * 270 + '"\n'
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "updates:\n"
    "  - id: ALLOC\n"
    "    client_status: running\n"
    "    message: [*d, *d, *d]\n"
)


def test_the_report_model_covers_exactly_the_fields_an_agent_may_set() -> None:
    assert set(AllocationUpdate.model_fields) == set(ALLOC_CLIENT_FIELDS)


@pytest.fixture(scope="module")
def placed(single: Cluster) -> tuple[str, str, str]:
    """A node with one allocation placed on it: (node id, node token, allocation id)."""
    server = single.servers[0]
    node = server.post("/v1/nodes", json={
        "name": "reporter", "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}).json()
    job = {"id": "reported", "type": "service", "groups": [{
        "name": "g", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["sleep", "600"]}}]}
    assert server.post("/v1/jobs", json=job).status_code == 201
    allocs = wait_for(lambda: server.get("/v1/allocations", params={"job": "reported"}).json(),
                      15, "the allocation to be placed")
    return node["id"], node["token"], allocs[0]["id"]


def _report(single: Cluster, placed, body: str, content_type: str) -> httpx.Response:
    node_id, token, _ = placed
    return httpx.post(f"{single.servers[0].url}/v1/nodes/{node_id}/allocations", content=body,
                      headers={"x-node-token": token, "content-type": content_type}, timeout=30)


def test_a_516_byte_report_with_aliases_in_message_is_refused_and_reads_stay_small(
        single: Cluster, placed) -> None:
    _, _, alloc_id = placed
    body = ALIAS_REPORT.replace("ALLOC", alloc_id)
    assert len(body) < 600
    response = _report(single, placed, body, "application/yaml")
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    # Every problem is named (unknown top-level keys first), the oversized message among them.
    fields = [e["field"] for e in error.get("errors", [])] or [error["field"]]
    assert "updates[0].message" in fields, error
    listing = single.servers[0].get("/v1/allocations")
    assert len(listing.content) < 10_000


@pytest.mark.parametrize(("update", "field"), [
    ({"message": "m" * 4097}, "updates[0].message"),
    ({"message": {"nested": "x"}}, "updates[0].message"),
    ({"exit_code": "0"}, "updates[0].exit_code"),
    ({"exit_code": 1 << 40}, "updates[0].exit_code"),
    ({"signal": 999}, "updates[0].signal"),
    ({"ports": {f"p{i}": 1000 + i for i in range(65)}}, "updates[0].ports"),
    ({"ports": {"http": 70000}}, "updates[0].ports.http"),
    ({"ports": {"bad name": 80}}, "updates[0].ports.bad name"),
    ({"ports": {"http": [80]}}, "updates[0].ports.http"),
    ({"restarts": -1}, "updates[0].restarts"),
    ({"healthy": "yes"}, "updates[0].healthy"),
    ({"started_at": "now"}, "updates[0].started_at"),
    ({"client_status": "exploded"}, "updates[0].client_status"),
    ({"node_id": "elsewhere"}, "updates[0].node_id"),
])
def test_each_reported_field_is_typed_and_capped(single: Cluster, placed, update,
                                                 field) -> None:
    _, _, alloc_id = placed
    body = {"updates": [{"id": alloc_id, "client_status": "running", **update}]}
    response = _report(single, placed, httpx.Request("POST", "/", json=body).content.decode(),
                       "application/json")
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["field"] == field


def test_a_well_formed_report_is_recorded(single: Cluster, placed) -> None:
    _, _, alloc_id = placed
    body = {"updates": [{"id": alloc_id, "client_status": "running", "ports": {"http": 8080},
                         "message": "started", "started_at": 1.5e9, "restarts": 0}]}
    response = _report(single, placed, httpx.Request("POST", "/", json=body).content.decode(),
                       "application/json")
    assert response.status_code == 200, response.text
    alloc = single.servers[0].get("/v1/allocations", params={"job": "reported"}).json()[0]
    assert alloc["client_status"] == "running" and alloc["ports"] == {"http": 8080}
