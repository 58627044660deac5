"""Bad input over HTTP: a 4xx naming the field, and nothing written."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.harness import Cluster, wait_for
from tests.specs.test_job_spec import MALFORMED, valid


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Cluster:
    c = Cluster(tmp_path_factory.mktemp("single"), size=1).start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.kill_all()


def test_every_malformed_spec_gets_a_4xx_naming_the_field_and_the_state_is_unchanged(
        single: Cluster) -> None:
    server = single.servers[0]
    index_before = server.status()["index"]
    for field, mutate in MALFORMED:
        spec = valid()
        mutate(spec)
        response = server.post("/v1/jobs", json=spec)
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"]["field"] == field
    assert server.get("/v1/jobs").json() == []
    assert server.status()["index"] == index_before


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ("", "application/json", "body"),
        ("{not json", "application/json", "body"),
        ("[1, 2]", "application/json", None),
        (json.dumps({"id": "x", "type": "batch", "depends_on": ["ghost"], "groups": [
            {"name": "g", "resources": {"cpu": 1, "memory": 1}, "task": {"command": ["true"]}}]}),
         "application/json", "depends_on[0]"),
    ],
)
def test_undecodable_or_inconsistent_bodies_are_400(single: Cluster, body, content_type,
                                                    field) -> None:
    response = single.servers[0].post("/v1/jobs", content=body,
                                      headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json()["error"].get("field") == field


def test_a_yaml_job_spec_is_accepted(single: Cluster) -> None:
    text = """
id: yaml-job
type: service
groups:
  - name: web
    resources: {cpu: 100, memory: 64}
    task: {command: [sleep, "100"]}
"""
    server = single.servers[0]
    response = server.post("/v1/jobs", content=text,
                           headers={"content-type": "application/yaml"})
    assert response.status_code == 201, response.text
    assert server.get("/v1/jobs/yaml-job").json()["groups"][0]["count"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n", "capacity": {"cpu_milli": 0, "memory_mib": 1}}, "capacity.cpu_milli"),
        ({"name": "n"}, "capacity"),
        ({"name": "bad name", "capacity": {"cpu_milli": 1, "memory_mib": 1}}, "name"),
        ({"name": "n", "capacity": {"cpu_milli": 1, "memory_mib": 1}, "x": 1}, "x"),
        ({"name": "n", "capacity": {"cpu_milli": 1, "memory_mib": 1},
          "labels": {"bad key!": "v"}}, "labels.bad key!"),
    ],
)
def test_a_malformed_registration_is_400_naming_the_field(single: Cluster, body, field) -> None:
    response = single.servers[0].post("/v1/nodes", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


def test_unknown_things_are_404_in_the_error_shape(single: Cluster) -> None:
    server = single.servers[0]
    for path in ("/v1/jobs/none", "/v1/nodes/none", "/v1/nowhere"):
        response = server.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert server.get("/v1/jobs", params={"consistent": "maybe"}).status_code == 400


def test_a_retried_write_with_the_same_idempotency_key_is_applied_once(single: Cluster) -> None:
    server = single.servers[0]
    spec = valid() | {"id": "idem", "schedule": None}
    headers = {"Idempotency-Key": "k-123"}
    first = server.post("/v1/jobs", json=spec, headers=headers).json()
    spec["priority"] = 99
    second = server.post("/v1/jobs", json=spec, headers=headers).json()
    assert first == second
    assert server.get("/v1/jobs/idem").json()["priority"] == 50


def test_the_openapi_document_describes_the_job_spec(single: Cluster) -> None:
    doc = single.servers[0].get("/openapi.json").json()
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert "groups" in body["schema"]["properties"]


def test_a_snapshot_larger_than_a_job_body_can_be_restored(single: Cluster) -> None:
    server = single.servers[0]
    snapshot = server.get("/v1/snapshot").json()
    job = {"id": "", "spec": {**valid(), "schedule": None}, "version": 1, "stopped": False,
           "submit_time": 0.0, "create_index": 1, "modify_index": 1}
    snapshot["jobs"] = [{**job, "id": f"bulk-{i}", "spec": {**job["spec"], "id": f"bulk-{i}"}}
                        for i in range(3000)]
    body = json.dumps(snapshot)
    assert len(body) > 1 << 20
    response = server.post("/v1/snapshot", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert len(server.get("/v1/jobs").json()) == 3000
    assert server.status()["servers"][0]["id"] == "s1"


def test_idempotency_keys_are_scoped_to_the_resource(single: Cluster) -> None:
    server = single.servers[0]
    for job_id in ("c1", "c2"):
        server.post("/v1/jobs", json={**valid(), "id": job_id, "schedule": None})
    headers = {"Idempotency-Key": "stop-1"}
    for job_id in ("c1", "c2"):
        response = httpx.delete(f"{server.url}/v1/jobs/{job_id}", headers=headers)
        assert response.json()["id"] == job_id
    assert server.get("/v1/jobs/c2").json()["status"] == "dead"


def test_a_blocking_query_returns_when_the_state_changes(single: Cluster) -> None:
    import threading
    import time

    server = single.servers[0]

    # Earlier writes may still be settling (the scheduler commits each job's placement
    # report): start from a quiet state, so only this test's write can wake the query.
    def settled() -> int | None:
        before = int(server.get("/v1/allocations").headers["X-Federation-Index"])
        time.sleep(0.5)
        after = int(server.get("/v1/allocations").headers["X-Federation-Index"])
        return after if after == before else None

    index = wait_for(settled, 30, "a quiet state")
    started = time.monotonic()
    timer = threading.Timer(0.5, lambda: server.post(
        "/v1/jobs", json={**valid(), "id": "wake-up", "schedule": None}))
    timer.start()
    try:
        woke = httpx.get(server.url + "/v1/allocations",
                         params={"index": index, "wait": 10}, timeout=15)
    finally:
        timer.join()
    assert 0.4 < time.monotonic() - started < 5
    assert int(woke.headers["X-Federation-Index"]) > index
    quiet_index = wait_for(settled, 30, "a quiet state again")
    started = time.monotonic()
    idle = httpx.get(server.url + "/v1/allocations", params={"index": quiet_index, "wait": 0.5},
                     timeout=5)
    assert idle.status_code == 200
    assert 0.4 < time.monotonic() - started < 3
