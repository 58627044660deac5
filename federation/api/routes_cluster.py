"""Cluster endpoints: status, health, metrics, and snapshot backup/restore."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federation.api.auth import require_token
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import json_off_loop
from federation.specs.documents import SNAPSHOT_LIMITS
from federation.state.checks import snapshot as check_snapshot
from federation.state.machine import SNAPSHOT_VERSION

public = APIRouter()
router = APIRouter(dependencies=[Depends(require_token)])


@public.get("/v1/health", tags=["cluster"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness: the process serves HTTP. Says whether a leader is known, without auth."""
    m = master(request)
    return {"status": "ok", "id": m.config.id,
            "leader_known": m.raft is not None and m.raft.leader_addr() is not None}


@router.get("/v1/status", tags=["cluster"])
async def status(request: Request, consistent: bool = False) -> dict[str, Any]:
    await before_read(request, consistent)
    return master(request).status()


@router.get("/metrics", tags=["cluster"], include_in_schema=False)
def metrics(request: Request) -> Response:
    m = master(request)
    if m.raft is not None:
        m.metrics.is_leader.set(1 if m.raft.is_leader() else 0)
        m.metrics.term.set(m.raft.term())
        m.metrics.commit_index.set(m.raft.commit_index())
        m.metrics.rejected.set(m.raft.rejected_connections)
        m.metrics.state_index.set(m.machine.index)
    for kind, table in (("nodes", m.machine.nodes), ("jobs", m.machine.jobs),
                        ("allocations", m.machine.allocations)):
        m.metrics.state_objects.labels(kind).set(len(table))
    return Response(generate_latest(m.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/snapshot", tags=["cluster"])
async def snapshot(request: Request) -> dict[str, Any]:
    """The whole state as JSON, read after a barrier so it holds every acknowledged write."""
    await before_read(request, True)
    return await json_off_loop(master(request).machine.snapshot)  # type: ignore[return-value]


@router.post("/v1/snapshot", tags=["cluster"])
async def restore(request: Request) -> dict[str, Any]:
    """Replace the whole state with a snapshot, through Raft (every server adopts it)."""
    data = await document(request, SNAPSHOT_LIMITS)
    # Checked completely before it is committed: a bad snapshot is a 400 naming the field,
    # never an entry every server must reject. (The check runs again inside apply.)
    await run_in_threadpool(check_snapshot, data, SNAPSHOT_VERSION)
    return await master(request).commit(
        {"type": "state.restore", "id": command_id(request, "restore"), "snapshot": data})
