"""The agent protocol and the pool of nodes."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.acl.authorizer import PUBLIC, Need
from federation.agent.signing import ADDRESS_LABEL
from federation.api.acl import require
from federation.api.agent_address import validate_agent_address
from federation.api.auth import token_hash
from federation.api.deps import before_read, command_id, document, master
from federation.api.offload import encode_small, json_off_loop
from federation.api.pages import LimitQuery, NextQuery, decode_token, page
from federation.api.schemas import NodeRegistration, validate_model
from federation.api.views import allocated_by_node, heartbeat_reply, node_view
from federation.errors import Conflict, Forbidden, NoLeader, NotFound, ValidationError
from federation.server import relay
from federation.specs.duration import parse_duration

router = APIRouter(tags=["nodes"])


def _node_or_404(request: Request, node_id: str) -> dict[str, Any]:
    node = master(request).machine.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}")
    return node


@router.post("/v1/nodes", status_code=201, dependencies=[Depends(require(Need("node-register")))],
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": NodeRegistration.model_json_schema()}}, "required": True}})
async def register(request: Request) -> dict[str, Any]:
    """Register a node (an agent re-registering under the same name keeps its id).

    A name already registered is taken over only with that node's own credential
    (``X-Node-Token``) or a management token; a node credential registers its own name only.
    """
    body = validate_model(NodeRegistration, await document(request))
    if ADDRESS_LABEL in body["labels"]:
        raise ValidationError(
            f"the label {ADDRESS_LABEL!r} is reserved: register the agent's endpoint in "
            "http_address", field=f"labels.{ADDRESS_LABEL}")
    m = master(request)
    principal = request.state.principal
    existing_id = m.machine.node_ids_by_name.get(body["name"])
    existing = m.machine.nodes.get(existing_id) if existing_id else None
    presented = request.headers.get("x-node-token")
    own = existing is not None and presented is not None and hmac.compare_digest(
        token_hash(presented), existing["token_hash"])
    if principal.kind == "node" and not own:
        raise Forbidden("a node credential may only register its own node again",
                        field="name")
    if existing is not None and not own and not principal.unrestricted:
        raise Conflict(
            f"node {body['name']!r} is registered: registering it again needs its node "
            "token (X-Node-Token) or a management token", field="name")
    if body["http_address"]:
        body["http_address"] = validate_agent_address(
            body["http_address"], request.client.host if request.client else None,
            m.config.agent_networks)
    cid = command_id(request, "node-register")
    token = m.node_token(cid)
    proposed_id = hashlib.sha256(cid.encode()).hexdigest()[:32]
    node = {**body, "id": proposed_id, "token_hash": token_hash(token)}
    value = await m.commit({"type": "node.register", "id": cid, "node": node})
    return {"id": value["id"], "token": token,
            "signing_key": m.agent_signing_key(node["token_hash"])}


@router.post("/v1/nodes/{node_id}/heartbeat",
             dependencies=[Depends(require(Need("node-self")))])
async def heartbeat(request: Request, node_id: str) -> dict[str, Any]:
    """A node is alive. Nothing is committed for a node that is ready: heartbeats live in
    the leader's memory (a follower relays them to the leader in batches, see
    ``federation.server.relay``). A node marked down that beats again is committed back to
    ready."""
    m = master(request)
    at = m.liveness.beat(node_id)
    node = _node_or_404(request, node_id)
    if not m.raft.is_leader():
        if not m.relay.healthy():
            raise NoLeader("this server cannot reach the leader right now: try another",
                           leader=m.leader_hint())
        m.relay.add(node_id, at)
    if node["status"] != "ready":
        await m.commit({"type": "node.heartbeat",
                        "id": command_id(request, f"heartbeat:{node_id}"), "node_id": node_id})
        node = _node_or_404(request, node_id)
    return heartbeat_reply(node, m.liveness.last_seen(node_id),
                           m.rhythm.told(len(m.machine.nodes)))


@router.post(relay.PATH, include_in_schema=False, dependencies=[Depends(require(PUBLIC))])
async def relayed_heartbeats(request: Request) -> dict[str, Any]:
    """Heartbeats a follower received, in one batch signed with the cluster's relay key
    (no API credential: only servers hold the key)."""
    m = master(request)
    body = await request.body()
    try:
        beats = relay.decode_batch(m.relay_key, body,
                                   request.headers.get(relay.SIGNATURE_HEADER), time.time())
    except relay.BatchRefused as exc:
        raise Forbidden(str(exc)) from None
    if not m.raft.is_leader():
        raise NoLeader("this server is not the leader", leader=m.leader_hint())
    m.liveness.record(beats)
    return {"recorded": len(beats)}


@router.get("/v1/nodes", dependencies=[Depends(require(Need("node", "read")))])
async def list_nodes(request: Request, response: Response,
                     consistent: bool = False, limit: int | None = LimitQuery,
                     next: str | None = NextQuery) -> list[dict[str, Any]]:
    """Nodes, sorted by name."""
    start = decode_token(next, (str,)) if next is not None else None
    await before_read(request, consistent)
    machine = master(request).machine
    headers = {"X-Federation-Index": str(machine.index)}

    def view() -> list[dict[str, Any]]:
        usage = allocated_by_node(machine)
        nodes = sorted(list(machine.nodes.values()), key=lambda n: n["name"])
        chosen = page(nodes, lambda n: (n["name"],), limit, start, headers)
        seen = master(request).liveness.seen()
        return [node_view(n, usage.get(n["id"]), seen.get(n["id"])) for n in chosen]

    return await json_off_loop(view, headers=headers)  # type: ignore[return-value]


@router.get("/v1/nodes/{node_id}", dependencies=[Depends(require(Need("node", "read")))])
async def get_node(request: Request, node_id: str, consistent: bool = False,
                   index: int | None = Query(default=None, ge=0, description=(
                       "blocking query: answer once this node changed after this index "
                       "(see X-Federation-Index); heartbeats are not changes")),
                   wait: float = Query(default=30.0, gt=0, le=300,
                                       description="blocking query timeout, s"),
                   ) -> dict[str, Any]:
    await before_read(request, consistent)
    _node_or_404(request, node_id)
    m = master(request)
    keys = (f"node:{node_id}",)
    if index is not None:
        await m.wait_for_change(keys, index, wait)
    at = max(m.machine.watch_index_of(*keys), 1)
    node = _node_or_404(request, node_id)
    view = node_view(node, allocated_by_node(m.machine).get(node_id),
                     m.liveness.last_seen(node_id))
    return Response(encode_small(view), media_type="application/json",  # type: ignore[return-value]
                    headers={"X-Federation-Index": str(at)})


@router.post("/v1/nodes/{node_id}/drain",
             dependencies=[Depends(require(Need("node", "write")))])
async def drain(request: Request, node_id: str) -> dict[str, Any]:
    """Drain a node. Body (optional): ``{"deadline": "10m"}``: batch work still running
    then is stopped and placed elsewhere; without it batch work may finish."""
    _node_or_404(request, node_id)
    body = await document(request) if (await request.body()).strip() else {}
    if not isinstance(body, dict) or set(body) - {"deadline"}:
        raise ValidationError("the body may only hold a deadline", field="deadline")
    command: dict[str, Any] = {"type": "node.drain", "id": command_id(request, f"drain:{node_id}"),
                               "node_id": node_id, "draining": True, "time": time.time()}
    if body.get("deadline") is not None:
        try:
            seconds = parse_duration(body["deadline"])
        except ValueError as exc:
            raise ValidationError(str(exc), field="deadline") from None
        command["deadline"] = command["time"] + seconds
    m = master(request)
    await m.commit(command)
    return node_view(m.machine.nodes[node_id], allocated_by_node(m.machine).get(node_id))


@router.post("/v1/nodes/{node_id}/undrain",
             dependencies=[Depends(require(Need("node", "write")))])
async def undrain(request: Request, node_id: str) -> dict[str, Any]:
    """End a drain: the node is eligible for new work again (its migrated work stays where
    it went)."""
    _node_or_404(request, node_id)
    m = master(request)
    await m.commit({"type": "node.drain", "id": command_id(request, f"undrain:{node_id}"),
                    "node_id": node_id, "draining": False, "time": time.time()})
    return node_view(m.machine.nodes[node_id], allocated_by_node(m.machine).get(node_id))
