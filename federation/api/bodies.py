"""Request bodies at the HTTP edge: capped while they stream in, decoded off the event loop.

* :class:`BodyLimit` is ASGI middleware in front of every route. A ``Content-Length`` over
  the cap is answered 413 before a byte of the body is read; a chunked body is counted as
  it arrives and the route reading it gets a 413 the moment the cap is passed, so no more
  than the cap (plus one chunk) is ever held.
* :func:`read_document` decodes a body with :func:`federation.specs.documents.decode`
  (depth, size, integer and alias bounds) in a worker: small JSON in a thread, YAML and
  large bodies in a separate process, so neither the event loop (``/v1/health``) nor the
  Raft thread, which share one GIL with it, waits on a parser.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from federation.errors import FederationError, ValidationError
from federation.specs.documents import DEFAULT_LIMITS, Limits, decode

MAX_BODY_BYTES = 1 << 20
MAX_SNAPSHOT_BYTES = 32 << 20  # one Raft entry carries it: see federation.raft.node
# Routes whose bodies may be bigger than the general cap: (method, path) -> bytes.
LARGE_BODY_ROUTES = {("POST", "/v1/snapshot"): MAX_SNAPSHOT_BYTES}
# A body that may be YAML and is larger than this goes to a parser process: YAML is parsed
# and built in Python, seconds per MiB, holding the GIL the Raft thread needs. JSON is
# decoded in a thread: the C decoder takes ~10 ms per MiB.
THREAD_YAML_BYTES = 4 << 10
PARSER_PROCESSES = 2

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(FederationError):
    code = "too_large"
    http_status = 413


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the request body exceeds {limit} bytes", field="body", limit=limit)


class BodyLimit:
    """Pure ASGI middleware capping request bodies (see the module docstring)."""

    def __init__(self, app: Callable[..., Any], max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def limit_for(self, method: str, path: str) -> int:
        return max(self.max_body_bytes, LARGE_BODY_ROUTES.get((method, path), 0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(send, too_large(limit))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # A malformed length is the HTTP server's to refuse; only digits are trusted.
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


async def _send_error(send: Send, error: FederationError) -> None:
    from federation.api.errors import error_response

    response = error_response(error.http_status, error.to_dict())
    # The body was not read: the connection cannot be reused for another request.
    response.headers["connection"] = "close"
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class _ProcessParser:
    """A small pool of parser processes, started on first use and rebuilt if one dies."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the server has Raft and HTTP threads a fork would copy
                # mid-flight.
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def decode(self, body: bytes, content_type: str, limits: Limits) -> Any:
        pool = self._executor()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, _decode_in_worker, body, content_type,
                                              limits)
        except BrokenProcessPool:
            self._discard(pool)
            raise ValidationError(
                "the request body could not be decoded within the server's limits",
                field="body") from None


def _lower_priority() -> None:
    # Parsing is background work: the server's own threads (Raft, HTTP) come first.
    os.nice(10)


def _decode_in_worker(body: bytes, content_type: str, limits: Limits) -> Any:
    return decode(body, content_type=content_type, limits=limits)


PROCESS_PARSER = _ProcessParser(PARSER_PROCESSES)


async def decode_off_loop(body: bytes, content_type: str,
                          limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode ``body`` in a thread when it is JSON or small, otherwise in a parser process."""
    if "json" in content_type.lower() or len(body) <= THREAD_YAML_BYTES:
        return await run_in_threadpool(decode, body, content_type=content_type, limits=limits)
    return await PROCESS_PARSER.decode(body, content_type, limits)


async def read_document(request: Request, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The request's body decoded as one JSON or YAML document (see the module docstring).
    The size cap itself is :class:`BodyLimit`'s, applied while the body streams in."""
    body = await request.body()
    if not body.strip():
        raise ValidationError("the request body is empty", field="body")
    return await decode_off_loop(body, request.headers.get("content-type", ""), limits)
