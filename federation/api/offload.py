"""Heavy reads leave the event loop: the view is computed *and* serialised in a worker
thread, so one large answer (a snapshot, every allocation, a plan) cannot hold up
``/v1/health`` or any other request served by the same loop.

FastAPI would serialise a returned value on the event loop (``jsonable_encoder`` then
``json.dumps``): for a list of 100,000 allocations that is seconds. Routes return
:func:`json_off_loop` instead; their return annotations still describe the body for the
OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Response
from starlette.concurrency import run_in_threadpool


def _encode(value: Any) -> bytes:
    # The same output as Starlette's JSONResponse (compact, no NaN), built in one pass.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


async def json_off_loop(compute: Callable[[], Any], *, status_code: int = 200,
                        headers: Mapping[str, str] | None = None) -> Response:
    """``compute()`` run and JSON-encoded in the thread pool; the bytes sent as the answer."""
    body = await run_in_threadpool(lambda: _encode(compute()))
    return Response(body, status_code=status_code, headers=dict(headers or {}),
                    media_type="application/json")
