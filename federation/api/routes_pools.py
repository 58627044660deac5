"""Pools (capacity sources) and the autoscaler's activity log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.acl.authorizer import Need
from federation.api.acl import require
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import json_off_loop
from federation.autoscaler.observe import activities, pool_view
from federation.errors import NotFound, ValidationError
from federation.providers.base import available_providers
from federation.specs.pool import PoolSpec, parse_pool
from federation.specs.suggest import did_you_mean

router = APIRouter()
READ = [Depends(require(Need("pool", "read")))]
WRITE = [Depends(require(Need("pool", "write")))]


def _pool_or_404(request: Request, name: str) -> dict[str, Any]:
    pool = master(request).machine.pools.get(name)
    if pool is None:
        raise NotFound(f"no pool {name!r}")
    return pool


def _known_provider(name: str) -> None:
    """Refuse a pool of a provider this server cannot load now, not later in the
    autoscaler's activity log."""
    known = sorted(available_providers())
    if name not in known:
        raise ValidationError(
            f"unknown provider {name}{did_you_mean(name, known)} "
            f"(known providers: {', '.join(known)})", field="provider")


@router.put("/v1/pools/{name}", tags=["pools"], dependencies=WRITE,
            openapi_extra={"requestBody": {"content": {
                "application/json": {"schema": PoolSpec.model_json_schema()},
                "application/yaml": {"schema": PoolSpec.model_json_schema()}},
                "required": True}})
async def apply_pool(request: Request, name: str) -> dict[str, Any]:
    """Create or replace a pool. The name in the path must be the spec's ``name``."""
    body = await document(request)
    if isinstance(body, dict) and "name" not in body:
        body = {"name": name, **body}
    spec = parse_pool(body).model_dump(mode="json")
    _known_provider(spec["provider"])
    if spec["name"] != name:
        raise ValidationError(
            f"the spec names pool {spec['name']!r} but the path names {name!r}", field="name")
    m = master(request)
    value = await m.commit({"type": "pool.apply", "id": command_id(request, f"pool:{name}"),
                            "spec": spec})
    return {"name": value["name"], "version": value["version"], "changed": value["changed"],
            "index": m.machine.index}


@router.get("/v1/pools", tags=["pools"], dependencies=READ)
async def list_pools(request: Request, response: Response,
                     consistent: bool = False) -> list[dict[str, Any]]:
    """Pools with their live node counts (by node status) and what they cost per hour."""
    await before_read(request, consistent)
    machine = master(request).machine

    def view() -> list[dict[str, Any]]:
        pools = sorted(list(machine.pools.values()), key=lambda p: p["name"])
        return [pool_view(machine, p) for p in pools]

    return await json_off_loop(  # type: ignore[return-value]
        view, headers={"X-Federation-Index": str(machine.index)})


@router.get("/v1/pools/{name}", tags=["pools"], dependencies=READ)
async def get_pool(request: Request, name: str, consistent: bool = False) -> dict[str, Any]:
    await before_read(request, consistent)
    return pool_view(master(request).machine, _pool_or_404(request, name))


@router.delete("/v1/pools/{name}", tags=["pools"], dependencies=WRITE)
async def delete_pool(request: Request, name: str) -> dict[str, Any]:
    """Forget a pool: the autoscaler stops buying from it (its instances are not touched)."""
    _pool_or_404(request, name)
    m = master(request)
    value = await m.commit({"type": "pool.delete",
                            "id": command_id(request, f"pool-delete:{name}"), "name": name})
    return {"name": value["name"], "index": m.machine.index}


@router.get("/v1/autoscaler/activities", tags=["autoscaler"], dependencies=READ)
async def list_activities(
    request: Request, response: Response, consistent: bool = False,
    limit: int = Query(default=100, ge=1, le=1000, description="most recent first"),
    pool: str | None = Query(default=None, description="only this pool's activities"),
) -> list[dict[str, Any]]:
    """What the autoscaler decided, why, what it costs per hour and what happened."""
    await before_read(request, consistent)
    machine = master(request).machine
    response.headers["X-Federation-Index"] = str(machine.index)
    return activities(machine, limit=limit, pool=pool)
