"""Route × credential matrix over HTTP against a real server with ACLs.

Namespace A is ``default`` (where jobs live until they name another) and B is ``team-b``.
Each cell is the status code that caller gets on that route: 401 (no usable credential),
403 (a credential without the capability, unknown, expired or deleted), or the route's own
answer (the logs route answers 404 to those allowed: the node serves no endpoint).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.harness import Cluster, wait_for

BOOT = "matrix-bootstrap-token-0123456789"
JOIN = "matrix-join-token-0123456789"
JOB = {"id": "web", "type": "batch", "groups": [{
    "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
    "task": {"driver": "exec", "command": ["true"]}}]}

ROUTES = ["list-jobs", "read-job", "submit", "logs", "nodes", "drain", "heartbeat", "pools",
          "status", "snapshot", "acl-tokens", "token-self", "health", "agent-settings"]
# Expected status per caller, in ROUTES order.
EXPECTED = {
    "none":       [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 200, 401],
    "anonymous":  [200, 200, 403, 403, 403, 403, 401, 403, 403, 403, 403, 403, 200, 403],
    "read-a":     [200, 200, 403, 403, 403, 403, 401, 403, 403, 403, 403, 200, 200, 403],
    "write-a":    [200, 200, 201, 404, 403, 403, 401, 403, 403, 403, 403, 200, 200, 403],
    "write-b":    [403, 403, 403, 403, 403, 403, 401, 403, 403, 403, 403, 200, 200, 403],
    "node":       [403, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 200, 200],
    "management": [200, 200, 201, 404, 200, 200, 401, 200, 200, 200, 200, 200, 200, 200],
    "expired":    [403, 403, 403, 403, 403, 403, 401, 403, 403, 403, 403, 403, 200, 403],
    "deleted":    [403, 403, 403, 403, 403, 403, 401, 403, 403, 403, 403, 403, 200, 403],
}


@pytest.fixture(scope="module")
def acl_cluster(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("matrix")
    join = root / "join.token"
    join.write_text(JOIN)
    cluster = Cluster(root / "c", size=1, token=BOOT,
                      extra_args=["--join-token-file", str(join)]).start()
    try:
        yield cluster.servers[0]
    finally:
        cluster.kill_all()


def call(server, route: str, headers: dict[str, str], ctx: dict) -> int:
    h = httpx.Client(base_url=server.url, headers=headers, timeout=10)
    with h:
        node = ctx["node_id"]
        match route:
            case "list-jobs":
                r = h.get("/v1/jobs")
            case "read-job":
                r = h.get("/v1/jobs/web")
            case "submit":
                r = h.post("/v1/jobs", json={**JOB, "id": f"m-{ctx['n']}"})
                ctx["n"] += 1
            case "logs":
                r = h.get(f"/v1/allocations/{ctx['alloc_id']}/logs")
            case "nodes":
                r = h.get("/v1/nodes")
            case "drain":
                r = h.post(f"/v1/nodes/{node}/drain")
            case "heartbeat":
                r = h.post(f"/v1/nodes/{node}/heartbeat", json={})
            case "pools":
                r = h.get("/v1/pools")
            case "status":
                r = h.get("/v1/status")
            case "snapshot":
                r = h.get("/v1/snapshot")
            case "acl-tokens":
                r = h.get("/v1/acl/tokens")
            case "token-self":
                r = h.get("/v1/acl/token/self")
            case "health":
                r = h.get("/v1/health")
            case "agent-settings":
                r = h.get("/v1/agent/settings")
    return r.status_code


def test_route_by_credential_matrix(acl_cluster) -> None:
    server = acl_cluster
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {BOOT}"},
                         timeout=10)
    wait_for(lambda: admin.get("/v1/status").json()["leader"], 30, "a leader")
    for name, rules in (("read-a", 'namespace "default" { policy = "read" }'),
                        ("write-a", 'namespace "default" { policy = "write" }'),
                        ("write-b", 'namespace "team-b" { policy = "write" }')):
        answer = admin.put(f"/v1/acl/policy/{name}", content=rules)
        assert answer.status_code == 200, answer.text

    def token(policy: str, **extra) -> dict:
        answer = admin.post("/v1/acl/tokens", json={"name": policy, "policies": [policy],
                                                    **extra})
        assert answer.status_code == 201, answer.text
        return answer.json()

    secrets = {p: token(p)["secret_id"] for p in ("read-a", "write-a", "write-b")}
    expired = token("read-a", ttl="1s")
    deleted = token("write-a")
    assert admin.delete(f"/v1/acl/token/{deleted['accessor_id']}").status_code == 200
    joined = httpx.post(server.url + "/v1/nodes", headers={"Authorization": f"Bearer {JOIN}"},
                        json={"name": "n1", "capacity": {"cpu_milli": 4000,
                                                         "memory_mib": 4096}})
    assert joined.status_code == 201, joined.text
    assert admin.post("/v1/jobs", json=JOB).status_code == 201
    alloc_id = wait_for(lambda: (admin.get("/v1/allocations", params={"job": "web"}).json()
                                 or [{}])[0].get("id"), 30, "the job to be placed")
    ctx = {"node_id": joined.json()["id"], "alloc_id": alloc_id, "n": 0}
    callers = {
        "none": {}, "management": {"Authorization": f"Bearer {BOOT}"},
        "node": {"X-Node-Token": joined.json()["token"]},
        "expired": {"Authorization": f"Bearer {expired['secret_id']}"},
        "deleted": {"Authorization": f"Bearer {deleted['secret_id']}"},
        **{p: {"Authorization": f"Bearer {s}"} for p, s in secrets.items()},
    }
    wait_for(lambda: time.time() > expired["expiration_time"], 5, "the short token to expire")
    got = {who: [call(server, route, headers, ctx) for route in ROUTES]
           for who, headers in callers.items()}
    # With an anonymous policy, callers without a token get what it grants.
    assert admin.put("/v1/acl/policy/anonymous",
                     content='namespace "default" { policy = "read" }').status_code == 200
    got["anonymous"] = [call(server, route, {}, ctx) for route in ROUTES]
    mismatches = {who: {route: (got[who][i], want[i]) for i, route in enumerate(ROUTES)
                        if got[who][i] != want[i]}
                  for who, want in EXPECTED.items()}
    assert {who: m for who, m in mismatches.items() if m} == {}
    admin.close()


def test_writes_are_logged_with_the_callers_accessor(acl_cluster) -> None:
    server = acl_cluster
    admin = {"Authorization": f"Bearer {BOOT}"}
    made = httpx.post(server.url + "/v1/acl/tokens", headers=admin, timeout=10,
                      json={"name": "auditor", "type": "management"}).json()
    job = {**JOB, "id": "audited"}
    answer = httpx.post(server.url + "/v1/jobs", json=job, timeout=10,
                        headers={"Authorization": f"Bearer {made['secret_id']}"})
    assert answer.status_code == 201
    wait_for(lambda: f"accessor {made['accessor_id']}" in server.log(), 5, "the audit line")
    assert made["secret_id"] not in server.log()
    assert BOOT not in server.log() and JOIN not in server.log()
