"""GPU sharing on a real server: jobs asking for a share of a GPU, on nodes registered
through the API, are all placed, however their shares add up in queue and node totals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster, wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator:
    c = Cluster(tmp_path / "c", size=1, extra_args=["--heartbeat-ttl", "120"]).start()
    try:
        c.wait_leader()
        yield c.servers[0]
    finally:
        c.kill_all()


def gpu_node(server, name: str) -> str:
    body = {"name": name, "capacity": {"cpu_milli": 16000, "memory_mib": 65536, "gpu": 2}}
    response = server.post("/v1/nodes", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def share_job(job_id: str, gpu: float) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "train", "count": 1, "resources": {"cpu": 1000, "memory": 1024, "gpu": gpu},
        "task": {"command": ["sleep", "600"]}}]}


def live(server, job_id: str) -> list[dict]:
    return [a for a in server.get("/v1/allocations", params={"job": job_id}).json()
            if a["desired_status"] == "run"]


def test_shares_that_add_up_past_one_gpu_are_all_placed(server) -> None:
    nodes = {gpu_node(server, f"gpu-{i}") for i in range(3)}
    for i in range(3):
        response = server.post("/v1/jobs", json=share_job(f"share-{i}", 0.46))
        assert response.status_code == 201, response.text
    # The queue's usage is 3 x 0.46 = 1.38 GPUs: a total, not one ask.
    def all_three() -> list[dict] | None:
        found = [a for i in range(3) for a in live(server, f"share-{i}")]
        return found if len(found) == 3 else None

    allocs = wait_for(all_three, 15, "three GPU-share allocations")
    assert {a["node_id"] for a in allocs} <= nodes
    for alloc in allocs:
        assert alloc["resources"]["gpu"] == 0.46
        assert len(alloc["resources"]["gpu_devices"]) == 1
    queues = {q["name"]: q for q in server.get("/v1/queues").json()}
    assert queues["default"]["usage"]["gpu"] == pytest.approx(1.38)
    assert "ask for whole GPUs or a share of one" not in server.log()


def test_a_whole_gpu_job_still_fits_beside_shares(server) -> None:
    gpu_node(server, "gpu-0")
    for i in range(3):
        assert server.post("/v1/jobs", json=share_job(f"share-{i}", 0.3)).status_code == 201
    wait_for(lambda: all(live(server, f"share-{i}") for i in range(3)), 15, "three shares")
    # 0.9 of one device is taken (packed onto one), so one whole device is left.
    assert server.post("/v1/jobs", json=share_job("whole", 1)).status_code == 201
    (alloc,) = wait_for(lambda: live(server, "whole") or None, 15, "the whole-GPU job")
    shares = {a["resources"]["gpu_devices"][0] for i in range(3)
              for a in live(server, f"share-{i}")}
    assert set(alloc["resources"]["gpu_devices"]).isdisjoint(shares)
