"""The agent side of the API: a node's own allocations, its status reports, and logs.

A node authenticates with the token it got at registration (``X-Node-Token``) and may only
read and report the allocations placed on it. Logs live on the nodes; a server proxies them
(``GET /v1/allocations/{id}/logs``) to the agent's own HTTP endpoint, at the address the agent
registered and the servers validated (``http_address``, see ``federation.api.agent_address``),
on a path and query the server builds, signing the request with the node's signing key (see
``federation.agent.signing``), so a user never needs to reach a node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from federation.acl.authorizer import Need
from federation.agent.signing import sign
from federation.api.acl import check, record_namespace, require
from federation.api.auth import check_node_token
from federation.api.deps import command_id, document, master
from federation.api.offload import encode_small, json_off_loop
from federation.api.reports import StatusReport, parse_report
from federation.errors import FederationError, Forbidden, NotFound

router = APIRouter(tags=["agent"])
NODE_SELF = [Depends(require(Need("node-self")))]
READ_LOGS = Need("namespace", "read-logs")

LOG_CONNECT_TIMEOUT = 5.0
# Work lists up to this many allocations are encoded on the event loop (cheaper than a hop
# to a worker thread); longer ones off it.
SMALL_ANSWER = 64


class AgentUnreachable(FederationError):
    code = "agent_unreachable"
    http_status = 502


@router.get("/v1/agent/settings", dependencies=[Depends(require(Need("agent")))])
async def agent_settings(request: Request) -> dict[str, Any]:
    """What an agent needs to know about the servers (its heartbeat interval is ttl/3)."""
    m = master(request)
    return {"heartbeat_ttl": m.rhythm.told(len(m.machine.nodes))}


@router.get("/v1/nodes/{node_id}/allocations", dependencies=NODE_SELF)
async def node_allocations(
    request: Request, response: Response, node_id: str,
    index: int | None = Query(default=None, ge=0, description=(
        "blocking query: answer once the state index is above this")),
    wait: float = Query(default=30.0, gt=0, le=300, description="blocking query timeout, s"),
) -> list[dict[str, Any]]:
    """The allocations placed on this node (node token required): the agent's work list.

    A blocking query (``index``) wakes only when this node's allocations change, and the
    answer costs what the node holds; ``X-Federation-Index`` is the index of their last
    change, to pass back as ``index``."""
    m = master(request)
    key = (f"node-allocs:{node_id}",)
    if index is not None:
        await m.wait_for_change(key, index, wait)
    machine = m.machine
    # The index first, then the records: a change in between makes the next query answer
    # at once rather than be missed.
    changed = max(machine.watch_index_of(*key), 1)
    allocations = machine.allocations
    allocs = [a for a in (allocations.get(i) for i in list(
        machine.alloc_ids_by_node.get(node_id, ()))) if a is not None]
    allocs.sort(key=lambda a: (a["job_id"], a["group"], a.get("index", 0), a["id"]))
    headers = {"X-Federation-Index": str(changed)}
    if len(allocs) > SMALL_ANSWER:
        return await json_off_loop(lambda: allocs, headers=headers)  # type: ignore[return-value]
    return Response(encode_small(allocs), headers=headers,  # type: ignore[return-value]
                    media_type="application/json")


@router.post("/v1/nodes/{node_id}/allocations", dependencies=NODE_SELF,
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": StatusReport.model_json_schema()}}, "required": True}})
async def report_status(request: Request, node_id: str) -> dict[str, Any]:
    """An agent reports what happened to its allocations (client fields only)."""
    updates = parse_report(await document(request))
    machine = master(request).machine
    for i, update in enumerate(updates):
        alloc = machine.allocations.get(update["id"])
        if alloc is None:
            raise NotFound(f"no allocation {update['id']!r}", field=f"updates[{i}].id")
        if alloc["node_id"] != node_id:
            raise Forbidden("the allocation belongs to another node", field=f"updates[{i}].id")
    m = master(request)
    value = await m.commit({"type": "alloc.update_status",
                            "id": command_id(request, f"alloc-status:{node_id}"),
                            "node_id": node_id, "updates": updates})
    return {"count": value["count"], "index": m.machine.index}


@router.get("/v1/allocations/{alloc_id}/logs", tags=["allocations"],
            dependencies=[Depends(require(READ_LOGS))])
async def allocation_logs(
    request: Request, alloc_id: str,
    stream: str = Query(default="stdout", pattern="^(stdout|stderr)$"),
    offset: int = Query(default=0, description=(
        "byte offset in the stream; negative: that many bytes before the end")),
    follow: bool = Query(default=False, description="keep streaming until the task ends"),
) -> StreamingResponse:
    """An allocation's output, read from its node through this server."""
    machine = master(request).machine
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    check(request, READ_LOGS, namespace=record_namespace(
        alloc if alloc.get("namespace") else machine.jobs.get(alloc["job_id"])))
    node = machine.nodes.get(alloc["node_id"])
    if node is None:
        raise NotFound(f"the node of allocation {alloc_id!r} is gone")
    if request.headers.get("x-node-token") is not None:
        # A caller speaking as a node may read its own allocations only.
        check_node_token(request, node["token_hash"])
    if node.get("provider") == "kubernetes" and node.get("cluster"):
        # A member cluster's pod: its log, read from the member's API by this server.
        import asyncio

        from federation.members.logs import pod_log

        data = await asyncio.to_thread(pod_log, master(request), node, alloc, offset)
        if stream == "stderr":
            data = b""  # Kubernetes keeps one combined log: it is all under stdout
        return StreamingResponse(iter([data]), media_type="application/octet-stream")
    # Only the address the servers validated at registration: never a label a caller chose.
    address = node.get("http_address")
    if not address:
        raise NotFound(f"node {node['name']!r} does not serve logs (no agent address)")
    target = f"/v1/allocations/{quote(alloc_id, safe='')}/logs?" + urlencode(
        {"stream": stream, "offset": offset, "follow": "true" if follow else "false"})
    m = master(request)
    headers = sign(m.agent_signing_key(node["token_hash"]), "GET", target)
    tls = m.agent_tls(node)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(LOG_CONNECT_TIMEOUT, read=None if follow else 30.0),
        follow_redirects=False, verify=tls[0] if tls else True)
    # The agent's certificate must name an agent of the node's region, whatever the address.
    extensions = {"sni_hostname": tls[1]} if tls else {}
    try:
        upstream = await client.send(
            client.build_request("GET", address.rstrip("/") + target, headers=headers,
                                 extensions=extensions),
            stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise AgentUnreachable(
            f"node {node['name']!r} did not answer at {address}: {exc!r}") from None
    if upstream.status_code != 200:
        text = (await upstream.aread()).decode(errors="replace")[:500]
        await upstream.aclose()
        await client.aclose()
        if upstream.status_code == 404:
            raise NotFound(f"node {node['name']!r} has no logs for {alloc_id!r}")
        raise AgentUnreachable(f"node {node['name']!r} answered {upstream.status_code}: {text}")

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the node went away mid-stream: end the stream
        finally:
            await upstream.aclose()
            await client.aclose()

    passed = {k: v for k, v in upstream.headers.items() if k.lower().startswith("x-federation-log")}
    return StreamingResponse(relay(), media_type="application/octet-stream", headers=passed)
