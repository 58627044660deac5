"""Acting on a running allocation through its node: restart it in place, signal it, run a
command inside it.

``POST /v1/allocations/{id}/restart`` and ``.../signal`` need the ``alloc-lifecycle``
capability in the job's namespace, ``.../exec`` needs ``alloc-exec``. The server checks the
request, then calls the agent's own endpoint (the address the servers validated at
registration) with a signed request whose query carries every parameter (see
``federation.agent.signing`` and ``federation.agent.control``). Nothing is committed: these
act on a process, not on the cluster's state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from federation.acl.authorizer import Need
from federation.agent.control import (
    DEFAULT_EXEC_TIMEOUT,
    MAX_COMMAND_ARGS,
    MAX_COMMAND_BYTES,
    MAX_EXEC_TIMEOUT,
    ControlError,
    signal_name,
)
from federation.agent.signing import sign
from federation.api.acl import check, record_namespace, require
from federation.api.deps import document, master
from federation.api.routes_agent import AgentUnreachable
from federation.errors import Conflict, FederationError, NotFound, ValidationError

if TYPE_CHECKING:
    from federation.server.master import Master

router = APIRouter(tags=["allocations"])
ALLOC_LIFECYCLE = Need("namespace", "alloc-lifecycle")
ALLOC_EXEC = Need("namespace", "alloc-exec")
CONNECT_TIMEOUT = 5.0


def _live_alloc(request: Request, alloc_id: str, need: Need) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    """The allocation and its node, once the caller may act on it and it runs."""
    machine = master(request).machine
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    check(request, need, namespace=record_namespace(machine.jobs.get(alloc["job_id"])))
    return running_allocation(machine, alloc_id)


def running_allocation(machine: Any, alloc_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The allocation and its node, when it runs there (the caller's rights are checked
    before: the API's ``check``, the UI's ``acting``)."""
    alloc = machine.allocations.get(alloc_id)
    if alloc is None:
        raise NotFound(f"no allocation {alloc_id!r}")
    if alloc["desired_status"] != "run" or alloc["client_status"] != "running":
        raise Conflict(f"allocation {alloc_id!r} is not running (desired "
                       f"{alloc['desired_status']}, status {alloc['client_status']})")
    node = machine.nodes.get(alloc["node_id"])
    if node is None:
        raise NotFound(f"the node of allocation {alloc_id!r} is gone")
    if not node.get("http_address"):
        raise NotFound(f"node {node['name']!r} has no agent address to reach")
    return alloc, node


async def _call_agent(m: Master, node: dict[str, Any], target: str,
                      read_timeout: float | None) -> tuple[httpx.AsyncClient, httpx.Response]:
    """POST ``target`` to the node's agent, signed; the open (streamed) response."""
    address = str(node["http_address"]).rstrip("/")
    headers = sign(m.agent_signing_key(node["token_hash"]), "POST", target)
    tls = m.agent_tls(node)
    client = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=read_timeout),
                               follow_redirects=False, verify=tls[0] if tls else True)
    extensions = {"sni_hostname": tls[1]} if tls else {}
    try:
        response = await client.send(
            client.build_request("POST", address + target, headers=headers,
                                 extensions=extensions), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise AgentUnreachable(
            f"node {node['name']!r} did not answer at {address}: {exc!r}") from None
    if response.status_code != 200:
        text = (await response.aread()).decode(errors="replace")
        await response.aclose()
        await client.aclose()
        raise _agent_error(node, response.status_code, text)
    return client, response


def _agent_error(node: dict[str, Any], status: int, text: str) -> FederationError:
    try:
        body = json.loads(text)
        message, field = str(body.get("error")), body.get("field")
    except (ValueError, AttributeError):
        message, field = text[:300], None
    if status == 404:
        return NotFound(f"node {node['name']!r}: {message}", field=field)
    if status == 409:
        return Conflict(f"node {node['name']!r}: {message}", field=field)
    if status == 400:
        return ValidationError(message, field=field)
    return AgentUnreachable(f"node {node['name']!r} answered {status}: {message[:300]}")


async def _simple(m: Master, node: dict[str, Any], target: str) -> dict[str, Any]:
    client, response = await _call_agent(m, node, target, 30.0)
    try:
        return dict(json.loads(await response.aread()))
    finally:
        await response.aclose()
        await client.aclose()


@router.post("/v1/allocations/{alloc_id}/restart",
             dependencies=[Depends(require(ALLOC_LIFECYCLE))])
async def restart_allocation(request: Request, alloc_id: str) -> dict[str, Any]:
    """Restart the task in place, on its node: stopped (SIGTERM, then SIGKILL after its
    kill_timeout) and started again at once. It uses no attempt of the restart policy."""
    alloc, node = _live_alloc(request, alloc_id, ALLOC_LIFECYCLE)
    await restart_on_agent(master(request), alloc, node)
    return {"id": alloc_id, "restarted": True, "node": node["name"]}


async def restart_on_agent(m: Master, alloc: dict[str, Any], node: dict[str, Any]) -> None:
    """Ask the allocation's agent to restart its task in place."""
    await _simple(m, node, f"/v1/allocations/{quote(alloc['id'], safe='')}/restart")


@router.post("/v1/allocations/{alloc_id}/signal",
             dependencies=[Depends(require(ALLOC_LIFECYCLE))])
async def signal_allocation(request: Request, alloc_id: str) -> dict[str, Any]:
    """Send a signal to the task: ``{"signal": "SIGHUP"}`` (``HUP`` is the same). To the
    task's process group (exec driver) or its container (docker)."""
    body = await document(request)
    if not isinstance(body, dict) or set(body) - {"signal"} or "signal" not in body:
        raise ValidationError('the body is {"signal": NAME}', field="signal")
    try:
        name = signal_name(body["signal"])
    except ControlError as exc:
        raise ValidationError(exc.message, field="signal") from None
    alloc, node = _live_alloc(request, alloc_id, ALLOC_LIFECYCLE)
    await _simple(master(request), node,
                  f"/v1/allocations/{quote(alloc['id'], safe='')}/signal?"
                  + urlencode({"signal": name}))
    return {"id": alloc_id, "signal": name, "node": node["name"]}


def _exec_body(body: Any) -> tuple[list[str], float]:
    if not isinstance(body, dict) or set(body) - {"command", "timeout"} or "command" not in body:
        raise ValidationError('the body is {"command": [...], "timeout": SECONDS}',
                              field="command")
    command = body["command"]
    if (not isinstance(command, list) or not command or len(command) > MAX_COMMAND_ARGS
            or not all(isinstance(a, str) and a and "\0" not in a for a in command)):
        raise ValidationError("the command is a non-empty list of non-empty strings",
                              field="command")
    if len(json.dumps(command).encode()) > MAX_COMMAND_BYTES:
        raise ValidationError(f"the command is longer than {MAX_COMMAND_BYTES} bytes",
                              field="command")
    timeout = body.get("timeout", DEFAULT_EXEC_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or \
            not 0 < timeout <= MAX_EXEC_TIMEOUT:
        raise ValidationError(f"timeout is a number of seconds above 0, at most "
                              f"{MAX_EXEC_TIMEOUT:g}", field="timeout")
    return command, float(timeout)


@router.post("/v1/allocations/{alloc_id}/exec", dependencies=[Depends(require(ALLOC_EXEC))])
async def exec_in_allocation(request: Request, alloc_id: str) -> StreamingResponse:
    """Run a command where the task runs, not interactively (no stdin, no terminal):
    ``{"command": ["ls", "-l"], "timeout": 60}``. exec driver: the task's working
    directory, environment and user; docker driver: ``docker exec`` in its container.
    The answer streams JSON lines: ``{"stdout": text}``, ``{"stderr": text}`` (or
    ``stdout_b64``/``stderr_b64`` for bytes that are not UTF-8), and last ``{"exit_code":
    n}`` (with ``error`` when it timed out and was killed)."""
    command, timeout = _exec_body(await document(request))
    alloc, node = _live_alloc(request, alloc_id, ALLOC_EXEC)
    target = f"/v1/allocations/{quote(alloc['id'], safe='')}/exec?" + urlencode(
        {"command": json.dumps(command), "timeout": f"{timeout:g}"})
    client, response = await _call_agent(master(request), node, target, timeout + 30.0)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            yield (json.dumps({"error": f"node {node['name']!r} went away"}) + "\n").encode()
        finally:
            await response.aclose()
            await client.aclose()

    return StreamingResponse(relay(), media_type="application/x-ndjson")
