"""``GET /v1/events``: what changed since an index, as a blocking query."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from federation.api.auth import require_token
from federation.api.deps import master
from federation.api.events import TOPICS, changes_since
from federation.errors import ValidationError

router = APIRouter(dependencies=[Depends(require_token)], tags=["events"])


@router.get("/v1/events")
async def events(
    request: Request, response: Response,
    index: int = Query(default=0, ge=0, description="only changes after this state index"),
    wait: float = Query(default=30.0, ge=0, le=300,
                        description="wait up to this long for a change (0: answer at once)"),
    topic: str = Query(default=",".join(TOPICS), description="job,allocation,node"),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """Jobs, allocations and nodes changed after ``index``, oldest first; waits (up to
    ``wait``) until there is one. Ask again with the ``X-Federation-Index`` header's value."""
    wanted = frozenset(t.strip() for t in topic.split(",") if t.strip())
    if not wanted or wanted - set(TOPICS):
        raise ValidationError(f"topic must be some of {', '.join(TOPICS)}", field="topic")
    m = master(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    seen = index
    while True:
        found = changes_since(m.machine, index, wanted, limit)
        current = m.machine.index
        remaining = deadline - loop.time()
        if found or remaining <= 0:
            break
        # Heartbeats move the index without changing a record: wait past them.
        seen = max(seen, current)
        await m.wait_for_index(seen, remaining)
    # Cut at the limit: resume at the last index again (repeats, never a loss).
    last = found[-1]["index"] - 1 if len(found) == limit else current
    response.headers["X-Federation-Index"] = str(max(last, index))
    return found
