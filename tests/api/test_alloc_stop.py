"""Stopping one allocation through the API: the ``alloc.stop`` command, on a real server.

The allocation is told to stop with the reason recorded; a service that still wants the copy
gets a replacement from the scheduler; stopping it again changes nothing; an unknown id is a
404."""

from __future__ import annotations

import httpx

from tests.harness import Cluster, wait_for


def test_stopping_an_allocation_records_why_and_the_scheduler_replaces_it(
        single: Cluster) -> None:
    server = single.servers[0]
    api = httpx.Client(base_url=server.url, timeout=10)
    assert api.post("/v1/nodes", json={
        "name": "stop-node", "pool": "default", "provider": "onprem",
        "capacity": {"cpu_milli": 2000, "memory_mib": 2048, "gpu": 0}}).status_code == 201
    answer = api.post("/v1/jobs", json={"id": "stoppable", "type": "service", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"driver": "exec", "command": ["sleep", "60"]}}]})
    assert answer.status_code == 201, answer.text
    (first,) = wait_for(lambda: api.get("/v1/allocations?job=stoppable").json(), 15,
                        "the scheduler to place the job")

    stopped = api.post(f"/v1/allocations/{first['id']}/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["changed"] is True
    record = api.get(f"/v1/allocations/{first['id']}").json()
    assert record["desired_status"] == "stop"
    assert record["desired_description"] == "stopped through the API"

    def replacement() -> list[dict]:
        return [a for a in api.get("/v1/allocations?job=stoppable").json()
                if a["id"] != first["id"] and a["desired_status"] == "run"]

    wait_for(replacement, 15, "a replacement placed by the scheduler")
    again = api.post(f"/v1/allocations/{first['id']}/stop")
    assert again.status_code == 200 and again.json()["changed"] is False
    missing = api.post("/v1/allocations/no-such-alloc/stop")
    assert missing.status_code == 404
