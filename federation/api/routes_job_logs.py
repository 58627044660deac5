"""A whole job's output: every current allocation's log read from its node, each line
prefixed with the allocation's short id (``GET /v1/jobs/{id}/logs``).

The allocations are read at once, each through the same signed call to its agent as
``GET /v1/allocations/{id}/logs``; their output is not interleaved (logs carry no times):
one allocation's lines, then the next's, in group and index order. An allocation whose node
cannot be read gives one line saying why, and the others are still shown.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from federation.agent.signing import sign
from federation.api.acl import check, record_namespace, require
from federation.api.deps import master
from federation.api.routes_agent import LOG_CONNECT_TIMEOUT, READ_LOGS
from federation.api.routes_jobs import NamespaceQuery
from federation.errors import NotFound
from federation.specs.namespace import job_key, write_scope

router = APIRouter(tags=["jobs"])
MAX_TAIL = 10_000
TAIL_BYTES_PER_LINE = 512  # bytes asked from the end of a stream per wanted line
MAX_BYTES = 4 << 20  # what one agent answers at most (federation.agent.logs.MAX_READ)
SHORT_ID = 8


def short_id(alloc_id: str) -> str:
    return alloc_id[-SHORT_ID:] if len(alloc_id) > SHORT_ID else alloc_id


def current_allocations(allocations: list[dict[str, Any]], group: str | None
                        ) -> list[dict[str, Any]]:
    """The copies the job runs now (told to run), in group and index order."""
    chosen = [a for a in allocations if a["desired_status"] == "run"
              and (group is None or a["group"] == group)]
    return sorted(chosen, key=lambda a: (a["group"], a.get("index", 0), a.get("create_index", 0)))


def prefixed(alloc_id: str, data: bytes, tail: int | None) -> list[str]:
    """The output's lines, each prefixed with the short id (the last ``tail`` ones)."""
    text = data.decode(errors="replace")
    lines = text.splitlines()
    if tail is not None:
        lines = lines[-tail:] if tail else []
    short = short_id(alloc_id)
    return [f"{short} {line}" for line in lines]


async def _read(request: Request, alloc: dict[str, Any], stream: str,
                tail: int | None) -> bytes:
    m = master(request)
    node = m.machine.nodes.get(alloc["node_id"])
    if node is None or not node.get("http_address"):
        raise LookupError("its node is gone or serves no logs")
    offset = -min(MAX_BYTES, tail * TAIL_BYTES_PER_LINE + 1) if tail is not None else 0
    target = f"/v1/allocations/{quote(alloc['id'], safe='')}/logs?" + urlencode(
        {"stream": stream, "offset": offset, "follow": "false"})
    headers = sign(m.agent_signing_key(node["token_hash"]), "GET", target)
    tls = m.agent_tls(node)
    extensions = {"sni_hostname": tls[1]} if tls else {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(LOG_CONNECT_TIMEOUT, read=30.0),
                                 follow_redirects=False,
                                 verify=tls[0] if tls else True) as client:
        try:
            answer = await client.send(client.build_request(
                "GET", str(node["http_address"]).rstrip("/") + target, headers=headers,
                extensions=extensions))
        except httpx.HTTPError as exc:
            raise LookupError(f"node {node['name']!r} did not answer: {exc!r}") from None
    if answer.status_code == 404:
        return b""  # never started there: no output yet
    if answer.status_code != 200:
        raise LookupError(f"node {node['name']!r} answered {answer.status_code}")
    data = answer.content
    try:
        start = int(answer.headers.get("X-Federation-Log-Offset", "0"))
    except ValueError:
        start = 0
    if start > 0 and b"\n" in data[:-1]:
        # Read from inside the stream: its first line may be cut, keep whole lines only.
        data = data.split(b"\n", 1)[1]
    return data


@router.get("/v1/jobs/{job_id}/logs", dependencies=[Depends(require(READ_LOGS))],
            response_class=PlainTextResponse)
async def job_logs(
    request: Request, job_id: str, namespace: str | None = NamespaceQuery,
    group: str | None = Query(default=None, description="only this task group's copies"),
    stream: str = Query(default="stdout", pattern="^(stdout|stderr)$"),
    tail: int | None = Query(default=None, ge=0, le=MAX_TAIL,
                             description="only the last N lines of each copy"),
) -> PlainTextResponse:
    """The output of every copy the job runs now, each line prefixed with the copy's
    short allocation id (``3f2a9c01 listening on 8080``)."""
    ns = write_scope(namespace)
    machine = master(request).machine
    job = machine.jobs.get(job_key(ns, job_id))
    if job is None:
        raise NotFound(f"no job {job_id!r} in namespace {ns!r}")
    check(request, READ_LOGS, namespace=record_namespace(job))
    names = [g["name"] for g in job["spec"]["groups"]]
    if group is not None and group not in names:
        raise NotFound(f"no group {group!r} in job {job_id!r} (groups: {', '.join(names)})",
                       field="group")
    ids = list(machine.alloc_ids_by_job.get(job["id"], ()))
    allocs = current_allocations(
        [machine.allocations[i] for i in ids if i in machine.allocations], group)
    results = await asyncio.gather(*(_read(request, a, stream, tail) for a in allocs),
                                   return_exceptions=True)
    lines: list[str] = []
    for alloc, result in zip(allocs, results, strict=True):
        if isinstance(result, BaseException):
            lines.append(f"{short_id(alloc['id'])} ! could not read its {stream}: {result}")
        else:
            lines.extend(prefixed(alloc["id"], result, tail))
    body = "\n".join(lines) + ("\n" if lines else "")
    return PlainTextResponse(body, headers={"X-Federation-Allocations": str(len(allocs))})
