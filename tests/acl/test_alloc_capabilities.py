"""Acting on an allocation needs its own capabilities in the job's namespace: restart and
signal `alloc-lifecycle`, exec `alloc-exec` (which `write` grants, and `read` does not).
A real server with ACLs; a caller allowed past the check meets the allocation's own state
(409: it is not running, no agent runs it)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.harness import Cluster, wait_for

BOOT = "alloc-caps-bootstrap-token-0123456789"
JOIN = "alloc-caps-join-token-0123456789"
JOB = {"id": "web", "type": "service", "groups": [{
    "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
    "task": {"driver": "exec", "command": ["sleep", "600"]}}]}
POLICIES = {
    "lifecycle": 'namespace "default" { capabilities = ["read-job", "alloc-lifecycle"] }',
    "exec": 'namespace "default" { capabilities = ["read-job", "alloc-exec"] }',
    "writer": 'namespace "default" { policy = "write" }',
    "reader": 'namespace "default" { policy = "read" }',
}
ACTIONS = {"restart": {}, "signal": {"signal": "SIGHUP"}, "exec": {"command": ["true"]}}
EXPECTED = {  # status per action: 409 means the capability check passed
    "lifecycle": {"restart": 409, "signal": 409, "exec": 403},
    "exec": {"restart": 403, "signal": 403, "exec": 409},
    "writer": {"restart": 409, "signal": 409, "exec": 409},
    "reader": {"restart": 403, "signal": 403, "exec": 403},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("alloc-caps")
    join = root / "join.token"
    join.write_text(JOIN)
    cluster = Cluster(root / "c", size=1, token=BOOT,
                      extra_args=["--join-token-file", str(join)]).start()
    try:
        yield cluster.servers[0]
    finally:
        cluster.kill_all()


def test_each_action_needs_its_capability(server) -> None:
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {BOOT}"},
                         timeout=10)
    wait_for(lambda: admin.get("/v1/status").json()["leader"], 30, "a leader")
    secrets = {}
    for name, rules in POLICIES.items():
        assert admin.put(f"/v1/acl/policy/{name}", content=rules).status_code == 200
        made = admin.post("/v1/acl/tokens", json={"name": name, "policies": [name]})
        assert made.status_code == 201, made.text
        secrets[name] = made.json()["secret_id"]
    joined = httpx.post(server.url + "/v1/nodes", headers={"Authorization": f"Bearer {JOIN}"},
                        json={"name": "n1", "capacity": {"cpu_milli": 4000,
                                                         "memory_mib": 4096}})
    assert joined.status_code == 201, joined.text
    assert admin.post("/v1/jobs", json=JOB).status_code == 201
    alloc_id = wait_for(lambda: (admin.get("/v1/allocations", params={"job": "web"}).json()
                                 or [{}])[0].get("id"), 30, "the job to be placed")
    got = {}
    for name, secret in secrets.items():
        with httpx.Client(base_url=server.url, timeout=10,
                          headers={"Authorization": f"Bearer {secret}"}) as caller:
            got[name] = {action: caller.post(f"/v1/allocations/{alloc_id}/{action}",
                                             json=body).status_code
                         for action, body in ACTIONS.items()}
    assert got == EXPECTED
    admin.close()
