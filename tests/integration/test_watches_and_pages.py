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
