"""Blocking queries that wake only for their own key, and paged lists, on a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Cluster, ServerProcess, wait_for
from tests.integration.test_scheduling import add_node, job


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    c = Cluster(tmp_path / "c", size=1, extra_args=["--heartbeat-ttl", "120"]).start()
    try:
        c.wait_leader(timeout=30)
        yield c.servers[0]
    finally:
        c.kill_all()


def register(server: ServerProcess, name: str) -> tuple[str, str]:
    body = server.post("/v1/nodes", json={
        "name": name, "capacity": {"cpu_milli": 4000, "memory_mib": 4096}}).json()
    return body["id"], body["token"]


def work_list(server: ServerProcess, node: tuple[str, str], **params: float):
    return httpx.get(f"{server.url}/v1/nodes/{node[0]}/allocations", params=params,
                     headers={"X-Node-Token": node[1]}, timeout=30)


def test_a_work_list_watch_is_not_woken_by_another_node_s_work(server: ServerProcess) -> None:
    a, b = register(server, "node-a"), register(server, "node-b")
    a_index = int(work_list(server, a).headers["X-Federation-Index"])
    b_index = int(work_list(server, b).headers["X-Federation-Index"])
    answers: dict[str, tuple[float, int, list]] = {}

    def watch(name: str, node: tuple[str, str], index: int) -> None:
        started = time.monotonic()
        answer = work_list(server, node, index=index, wait=4)
        answers[name] = (time.monotonic() - started,
                         int(answer.headers["X-Federation-Index"]), answer.json())

    watchers = [threading.Thread(target=watch, args=("a", a, a_index)),
                threading.Thread(target=watch, args=("b", b, b_index))]
    for watcher in watchers:
        watcher.start()
    time.sleep(0.5)
    only_b = job("on-b", 2, constraints=[
        {"attribute": "node.id", "operator": "=", "value": b[0]}])
    assert server.post("/v1/jobs", json=only_b).status_code == 201
    for watcher in watchers:
        watcher.join(20)
    b_took, b_now, b_allocs = answers["b"]
    a_took, a_now, a_allocs = answers["a"]
    # B's watch answered when its work arrived; A's slept through it to its timeout.
    assert b_took < 3.5 and b_now > b_index and len(b_allocs) == 2
    assert a_took >= 3.5 and a_now == a_index and a_allocs == []


def collect(server: ServerProcess, path: str, limit: int, key: str) -> list[str]:
    seen, params, pages = [], {"limit": limit}, 0
    while True:
        answer = server.get(path, params=params)
        assert answer.status_code == 200, answer.text
        items = answer.json()
        assert len(items) <= limit
        seen.extend(item[key] for item in items)
        pages += 1
        token = answer.headers.get("X-Federation-Next-Token")
        if token is None:
            return seen
        assert pages < 100
        params = {"limit": limit, "next": token}


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_pages_hold_every_item_exactly_once(server: ServerProcess, limit: int) -> None:
    for i in range(5):
        add_node(server, f"n{i}")
    for i in range(4):
        assert server.post("/v1/jobs", json=job(f"j{i}", 2)).status_code == 201
    wait_for(lambda: len(server.get("/v1/allocations").json()) == 8, 15, "8 allocations")
    for path, key in (("/v1/nodes", "id"), ("/v1/jobs", "id"), ("/v1/allocations", "id")):
        whole = [item[key] for item in server.get(path).json()]
        assert collect(server, path, limit, key) == whole, path


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": -1}, {"limit": 10_001},
                                    {"limit": "ten"}, {"limit": 2, "next": "%%"},
                                    {"limit": 2, "next": "WzFd"}])
def test_bad_page_parameters_are_a_400_naming_the_field(server: ServerProcess, params) -> None:
    for path in ("/v1/nodes", "/v1/jobs", "/v1/allocations"):
        answer = server.get(path, params=params)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["field"] == ("next" if "next" in params else "limit")


def timed_get(url: str, **params) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = httpx.get(url, params=params, timeout=30)
    return time.monotonic() - started, answer


def test_a_job_or_node_watch_wakes_for_its_own_changes_only(server: ServerProcess) -> None:
    a, b = register(server, "node-a"), register(server, "node-b")
    def pinned(job_id: str, count: int, node: tuple[str, str]) -> dict:
        return job(job_id, count, constraints=[
            {"attribute": "node.id", "operator": "=", "value": node[0]}])

    for job_id, node in (("mine", a), ("other", b)):
        assert server.post("/v1/jobs", json=pinned(job_id, 1, node)).status_code == 201
    wait_for(lambda: len(server.get("/v1/allocations").json()) == 2, 15, "both placed")
    time.sleep(1.0)  # the scheduler's reports settle
    job_url, node_url = f"{server.url}/v1/jobs/mine", f"{server.url}/v1/nodes/{a[0]}"
    job_index = int(httpx.get(job_url).headers["X-Federation-Index"])
    node_index = int(httpx.get(node_url).headers["X-Federation-Index"])
    answers: dict[str, tuple[float, httpx.Response]] = {}
    watchers = [
        threading.Thread(target=lambda: answers.__setitem__(
            "job", timed_get(job_url, index=job_index, wait=3))),
        threading.Thread(target=lambda: answers.__setitem__(
            "node", timed_get(node_url, index=node_index, wait=3)))]
    for watcher in watchers:
        watcher.start()
    time.sleep(0.3)
    # Another job changes, node A and B heart-beat, node B is drained: none of it is theirs.
    assert server.post("/v1/jobs", json=pinned("other", 2, b)).status_code == 201
    for node in (a, b):
        httpx.post(f"{server.url}/v1/nodes/{node[0]}/heartbeat", json={},
                   headers={"X-Node-Token": node[1]})
    assert server.post(f"/v1/nodes/{b[0]}/drain").status_code == 200
    for watcher in watchers:
        watcher.join(20)
    for name, index in (("job", job_index), ("node", node_index)):
        took, answer = answers[name]
        assert took >= 2.5 and int(answer.headers["X-Federation-Index"]) == index, name
    # Their own changes wake them at once.
    timer = threading.Timer(0.3, lambda: httpx.delete(job_url, timeout=10))
    timer.start()
    took, answer = timed_get(job_url, index=job_index, wait=10)
    timer.join()
    assert took < 5 and answer.json()["stopped"] is True
    timer = threading.Timer(0.3, lambda: server.post(f"/v1/nodes/{a[0]}/drain"))
    timer.start()
    took, answer = timed_get(node_url, index=node_index, wait=10)
    timer.join()
    assert took < 5 and answer.json()["draining"] is True
