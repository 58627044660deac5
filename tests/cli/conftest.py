"""A small in-memory stand-in for a federation server, served over real HTTP on loopback, so the
CLI is exercised through the SDK and a socket exactly as against the real thing.

It speaks the API's wire contract (paths, JSON shapes, error bodies, bearer auth) and keeps
just enough state to answer; it schedules nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


class FakeCluster:
    """The state behind the fake server, and what it was sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.token: str | None = None
            self.requests: list[dict[str, Any]] = []
            self.index = 10
            self.jobs: dict[str, dict[str, Any]] = {}
            self.nodes = {
                "6f1c2a9e-node-0001": _node("6f1c2a9e-node-0001", "rack1-a", "onprem", "r1"),
                "b07d44e1-node-0002": _node("b07d44e1-node-0002", "aws-burst-1", "aws", "us-1a"),
            }
            self.allocations: list[dict[str, Any]] = []

    def next_index(self) -> int:
        self.index += 1
        return self.index

    def job_view(self, job: dict[str, Any]) -> dict[str, Any]:
        mine = [a for a in self.allocations if a["job_id"] == job["id"]]
        by_status: dict[str, int] = {}
        for alloc in mine:
            by_status[alloc["client_status"]] = by_status.get(alloc["client_status"], 0) + 1
        return {**job, "allocations": by_status}


def _node(node_id: str, name: str, provider: str, zone: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "name": name,
        "pool": "default" if provider == "onprem" else "aws-burst",
        "provider": provider,
        "region": "dc1" if provider == "onprem" else "us-east-1",
        "zone": zone,
        "rack": "r1" if provider == "onprem" else "",
        "labels": {},
        "capacity": {"cpu_milli": 4000, "memory_mib": 8192, "gpu": 0},
        "allocated": {"cpu_milli": 0, "memory_mib": 0, "gpu": 0},
        "status": "ready",
        "draining": False,
        "last_heartbeat": time.time(),
    }


def build_app(cluster: FakeCluster) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record_and_authorize(request: Request, call_next):
        body = await request.body()
        cluster.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if cluster.token and request.url.path != "/v1/health":
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return _error(401, "unauthorized", "missing bearer token")
            if auth.removeprefix("Bearer ") != cluster.token:
                return _error(403, "forbidden", "wrong token")
        return await call_next(request)

    @app.get("/v1/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/status")
    def status():
        return {
            "self": "s2",
            "leader": "s1",
            "term": 4,
            "commit_index": cluster.index,
            "servers": [
                {
                    "id": f"s{i}",
                    "raft": f"127.0.0.1:{4790 + i}",
                    "http": f"http://127.0.0.1:{4780 + i}",
                    "role": "leader" if i == 1 else "follower",
                }
                for i in (1, 2, 3)
            ],
        }

    @app.get("/v1/nodes")
    def list_nodes():
        return list(cluster.nodes.values())

    @app.get("/v1/nodes/{node_id}")
    def get_node(node_id: str):
        node = cluster.nodes.get(node_id)
        return node if node else _error(404, "not_found", f'node "{node_id}" not found')

    @app.post("/v1/nodes/{node_id}/drain")
    def drain(node_id: str):
        node = cluster.nodes.get(node_id)
        if node is None:
            return _error(404, "not_found", f'node "{node_id}" not found')
        node["draining"] = True
        return node

    @app.post("/v1/jobs")
    async def submit(request: Request):
        spec = await request.json()
        for i, group in enumerate(spec.get("groups", [])):
            if int(group.get("count", 1)) < 1:
                return _error(400, "invalid", "must be ≥ 1", field=f"groups[{i}].count")
        with cluster.lock:
            previous = cluster.jobs.get(spec["id"])
            version = previous["version"] + 1 if previous else 1
            index = cluster.next_index()
            cluster.jobs[spec["id"]] = {
                **spec,
                "version": version,
                "status": "running",
                "stopped": False,
                "submit_time": time.time(),
                "create_index": previous["create_index"] if previous else index,
                "modify_index": index,
            }
            node_ids = list(cluster.nodes)
            for group in spec.get("groups", []):
                for n in range(int(group.get("count", 1))):
                    cluster.allocations.append(
                        {
                            "id": f"{spec['id']}-{group['name']}-{n}-alloc",
                            "job_id": spec["id"],
                            "group": group["name"],
                            "index": n,
                            "node_id": node_ids[n % len(node_ids)],
                            "desired_status": "run",
                            "client_status": "running",
                            "resources": {
                                "cpu_milli": group.get("resources", {}).get("cpu", 100),
                                "memory_mib": group.get("resources", {}).get("memory", 64),
                                "gpu": 0,
                            },
                        }
                    )
        return JSONResponse({"id": spec["id"], "version": version, "index": index}, 201)

    @app.post("/v1/jobs/plan")
    async def plan_job(request: Request):
        spec = await request.json()
        return {"id": spec.get("id"), "version": 1, "placements": [], "stops": [],
                "evictions": [], "unplaced": {}}

    @app.get("/v1/pools")
    async def list_pools():
        return []

    @app.get("/v1/jobs")
    def list_jobs():
        return [cluster.job_view(job) for job in cluster.jobs.values()]

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str):
        job = cluster.jobs.get(job_id)
        if job is None:
            return _error(404, "not_found", f'job "{job_id}" not found')
        return cluster.job_view(job)

    @app.delete("/v1/jobs/{job_id}")
    def stop(job_id: str):
        job = cluster.jobs.get(job_id)
        if job is None:
            return _error(404, "not_found", f'job "{job_id}" not found')
        with cluster.lock:
            job.update(stopped=True, status="dead", version=job["version"] + 1)
            for alloc in cluster.allocations:
                if alloc["job_id"] == job_id:
                    alloc.update(desired_status="stop", client_status="complete")
            return {"id": job_id, "version": job["version"], "index": cluster.next_index()}

    @app.get("/v1/allocations")
    def allocations(job: str | None = None, node: str | None = None):
        return [
            a
            for a in cluster.allocations
            if (job is None or a["job_id"] == job) and (node is None or a["node_id"] == node)
        ]

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _served_cluster() -> Iterator[tuple[FakeCluster, str]]:
    cluster = FakeCluster()
    port = free_port()
    config = uvicorn.Config(
        build_app(cluster), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-federation-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake server did not start")
        time.sleep(0.01)
    try:
        yield cluster, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def fake(_served_cluster) -> FakeCluster:
    """A fresh fake cluster state for each test; its URL is ``fake.url``."""
    cluster, url = _served_cluster
    cluster.reset()
    cluster.url = url  # type: ignore[attr-defined]
    return cluster
