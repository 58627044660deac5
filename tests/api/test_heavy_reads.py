"""Large reads are built and serialised off the event loop: health stays responsive."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.harness import Cluster
from tests.specs.test_job_spec import valid

JOBS = 4000


def _fill(server) -> None:
    snapshot = server.get("/v1/snapshot").json()
    job = {"id": "", "spec": {**valid(), "schedule": None}, "version": 1, "stopped": False,
           "submit_time": 0.0, "create_index": 1, "modify_index": 1}
    snapshot["jobs"] = [{**job, "id": f"bulk-{i}", "spec": {**job["spec"], "id": f"bulk-{i}"}}
                        for i in range(JOBS)]
    response = httpx.post(server.url + "/v1/snapshot", content=json.dumps(snapshot),
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text


def test_large_lists_snapshots_and_queue_reports_do_not_stall_health(single: Cluster) -> None:
    server = single.servers[0]
    _fill(server)
    stop = time.monotonic() + 4
    sizes: list[int] = []

    def read(path: str) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                response = client.get(server.url + path)
                assert response.status_code == 200
                sizes.append(len(response.content))

    readers = [threading.Thread(target=read, args=(path,))
               for path in ("/v1/jobs", "/v1/snapshot", "/v1/queues", "/v1/jobs")]
    for reader in readers:
        reader.start()
    latencies = []
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < stop:
            start = time.perf_counter()
            assert client.get(server.url + "/v1/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
    for reader in readers:
        reader.join(60)
    assert max(sizes) > 1 << 20  # the reads really were large
    assert max(latencies) < 0.5, f"health took {sorted(latencies)[-3:]} s"
    jobs = server.get("/v1/jobs")
    assert jobs.headers["content-type"] == "application/json"
    assert int(jobs.headers["x-federation-index"]) > 0
    assert len(jobs.json()) == JOBS
