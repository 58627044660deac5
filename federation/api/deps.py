"""Small helpers shared by the API routes: the master, request bodies, command ids, reads."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from federation.errors import ValidationError
from federation.ids import new_id
from federation.specs.job import parse_document

MAX_BODY_BYTES = 1 << 20
MAX_SNAPSHOT_BYTES = 32 << 20  # one Raft entry carries it: see federation.raft.node
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def master(request: Request) -> Any:
    return request.app.state.master


def command_id(request: Request, scope: str) -> str:
    """The command id: the client's Idempotency-Key (so a retry is applied once) or a new id."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return f"{scope}:{new_id()}"
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 1-128 characters of letters, digits and . _ : -",
            field="Idempotency-Key",
        )
    return f"{scope}:{key}"


async def document(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """Decode a JSON or YAML request body, refusing oversized ones."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ValidationError(f"the request body exceeds {max_bytes} bytes")
    body = await request.body()
    if len(body) > max_bytes:
        raise ValidationError(f"the request body exceeds {max_bytes} bytes")
    if not body.strip():
        raise ValidationError("the request body is empty")
    return parse_document(body, content_type=request.headers.get("content-type", ""))


async def before_read(request: Request, consistent: bool) -> None:
    """``?consistent=true``: a replicated no-op first, so the read reflects every write
    acknowledged before it, whichever server answers."""
    if consistent:
        await master(request).barrier()
