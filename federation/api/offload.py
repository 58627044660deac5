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
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Response
from starlette.concurrency import run_in_threadpool

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode_small(value: Any) -> bytes:
    """A small answer (one record, a node's work list) in one call of the C encoder, on the
    loop: it takes microseconds, and splitting it as :func:`encode` does would cost more than
    the encoding (a work list of 10 allocations: about 4 ms split, 0.1 ms whole)."""
    return _ENCODER.encode(value).encode("utf-8")


def encode(value: Any, depth: int = 0) -> bytes:
    """The same output as Starlette's JSONResponse (compact, no NaN), encoded record by
    record down to the second level: the C encoder holds the GIL for a whole call, so one
    call per record keeps the event loop's and the Raft thread's waits short."""
    if depth < 2 and isinstance(value, list):
        return b"[" + b",".join(encode(item, depth + 1) for item in value) + b"]"
    if depth < 2 and isinstance(value, dict):
        return b"{" + b",".join(
            _ENCODER.encode(str(key)).encode("utf-8") + b":" + encode(item, depth + 1)
            for key, item in value.items()) + b"}"
    return _ENCODER.encode(value).encode("utf-8")


# One heavy read computes at a time: under the GIL several would not finish sooner, but each
# busy thread lengthens every GIL hand-over the event loop and the Raft thread wait for.
# The others wait on this lock in their worker threads, not holding the GIL.
_HEAVY = threading.Lock()


def _compute_and_encode(compute: Callable[[], Any]) -> bytes:
    with _HEAVY:
        return encode(compute())


async def json_off_loop(compute: Callable[[], Any], *, status_code: int = 200,
                        headers: Mapping[str, str] | None = None) -> Response:
    """``compute()`` run and JSON-encoded in the thread pool; the bytes sent as the answer.
    ``headers`` are read once ``compute()`` returned: it may add to them (a next page)."""
    body = await run_in_threadpool(_compute_and_encode, compute)
    return Response(body, status_code=status_code, headers=dict(headers or {}),
                    media_type="application/json")
