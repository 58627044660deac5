"""Small helpers shared by the API routes: the master, request bodies, command ids, reads."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from federation.api.bodies import MAX_BODY_BYTES, MAX_SNAPSHOT_BYTES, read_document
from federation.errors import ValidationError
from federation.ids import new_id
from federation.specs.documents import DEFAULT_LIMITS, Limits

__all__ = ["MAX_BODY_BYTES", "MAX_SNAPSHOT_BYTES", "before_read", "command_id", "document",
           "master"]
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


async def document(request: Request, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode a JSON or YAML request body, bounded and off the event loop (the size cap
    is applied while it streams in: see ``federation.api.bodies``)."""
    return await read_document(request, limits)


async def before_read(request: Request, consistent: bool) -> None:
    """``?consistent=true``: a replicated no-op first, so the read reflects every write
    acknowledged before it, whichever server answers."""
    if consistent:
        await master(request).barrier()
