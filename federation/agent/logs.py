"""Reading an allocation's rotated log segments, and the agent's own small HTTP endpoint.

Segments are ``<stream>.<offset>.log`` (see the executor): a read at a stream offset finds the
segment that holds it; an offset older than the oldest kept segment starts at that segment.
The endpoint serves ``GET /v1/allocations/{id}/logs?stream=&offset=&follow=`` and the
task controls ``POST /v1/allocations/{id}/restart``, ``.../signal?signal=`` and
``.../exec?command=&timeout=`` (``federation.agent.control``) to servers only (signed
requests, see ``federation.agent.signing``); users reach them through a server.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import stat
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from federation.agent import control
from federation.agent.signing import DATE_HEADER, SIGNATURE_HEADER, verify

log = logging.getLogger("federation.agent")
MAX_READ = 4 << 20
FOLLOW_POLL_SECONDS = 0.2


def segments(log_dir: Path, stream: str) -> list[tuple[int, Path]]:
    """The stream's segments: regular files only (a link a task planted is not a segment)."""
    prefix = stream + "."
    found = []
    try:
        entries = list(os.scandir(log_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and name.endswith(".log"):
            middle = name[len(prefix):-len(".log")]
            if middle.isdigit() and entry.is_file(follow_symlinks=False):
                found.append((int(middle), log_dir / name))
    return sorted(found)


def open_segment(path: Path) -> int | None:
    """Open a segment without following a link, and only if it is a regular file with one
    name (a hard link to a file elsewhere has two): None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        log.warning("refusing to serve %s: not a plain log file", path)
        return None
    return fd


def stream_end(log_dir: Path, stream: str) -> int:
    found = segments(log_dir, stream)
    if not found:
        return 0
    start, path = found[-1]
    try:
        return start + path.stat().st_size
    except FileNotFoundError:
        return start


def read(log_dir: Path, stream: str, offset: int, limit: int = MAX_READ) -> tuple[int, bytes]:
    """``(start, data)``: up to ``limit`` bytes from ``offset`` (or the oldest kept byte)."""
    if offset < 0:
        offset = max(0, stream_end(log_dir, stream) + offset)
    out = bytearray()
    start = None
    for seg_start, path in segments(log_dir, stream):
        fd = open_segment(path)
        if fd is None:
            continue  # rotated away while we looked, or not a file of ours
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if seg_start + size <= offset:
                continue
            position = max(offset, seg_start)
            if start is None:
                start = position
            elif position != start + len(out):
                break
            handle.seek(position - seg_start)
            out += handle.read(limit - len(out))
        if len(out) >= limit:
            break
    return (offset if start is None else start), bytes(out)


class LogServer:
    """The agent's HTTP endpoint. ``alloc_logs(id)`` gives ``(log_dir, finished)`` or None;
    ``key()`` gives the current node-token hash that signs requests."""

    def __init__(self, bind: str, alloc_logs: Callable[[str], tuple[Path, Callable[[], bool]]
                                                          | None],
                 key: Callable[[], str | None],
                 tls_context: ssl.SSLContext | None = None,
                 runner_of: Callable[[str], Any] | None = None) -> None:
        host, _, port = bind.rpartition(":")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                log.debug("agent http: " + format, *args)

            def do_GET(self) -> None:  # noqa: N802 - the http.server naming
                outer.handle(self)

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                outer.handle_control(self)

        self.alloc_logs = alloc_logs
        self.runner_of = runner_of or (lambda alloc_id: None)
        self.key = key
        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port or 0)), Handler)
        self.server.daemon_threads = True
        self.tls = tls_context is not None
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="agent-http",
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        if host in ("0.0.0.0", "::"):
            host = socket.getfqdn()  # bound everywhere: advertise a name servers can reach
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
        body = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def handle_control(self, handler: BaseHTTPRequestHandler) -> None:
        """``POST /v1/allocations/{id}/restart|signal|exec``, signed like every request;
        parameters in the (signed) query string, never in a body."""
        key = self.key()
        if key is None or not verify(key, "POST", handler.path, handler.headers.get(DATE_HEADER),
                                     handler.headers.get(SIGNATURE_HEADER)):
            self._reply(handler, 403, "requests to an agent must be signed by a server")
            return
        parts = urlsplit(handler.path)
        pieces = parts.path.strip("/").split("/")
        if len(pieces) != 4 or pieces[:2] != ["v1", "allocations"] or \
                pieces[3] not in ("restart", "signal", "exec"):
            self._reply(handler, 404, "no such path")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        runner = self.runner_of(unquote(pieces[2]))
        try:
            if pieces[3] == "restart":
                control.restart(runner)
                self._reply_json(handler, 200, {"restarted": True})
            elif pieces[3] == "signal":
                name = control.signal_name(query.get("signal"))
                control.send_signal(runner, name)
                self._reply_json(handler, 200, {"signal": name})
            else:
                command = control.exec_command(query.get("command"))
                timeout = control.exec_timeout(query.get("timeout"))
                frames = control.run_in_task(runner, command, timeout)
                first = next(frames)  # refusals (not running) raise before any output
                handler.send_response(200)
                handler.send_header("Content-Type", "application/x-ndjson")
                handler.end_headers()
                try:
                    handler.wfile.write(first)
                    handler.wfile.flush()
                    for frame in frames:
                        handler.wfile.write(frame)
                        handler.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    frames.close()  # the caller left: the command is killed
        except control.ControlError as exc:
            self._reply_json(handler, exc.status, {"error": exc.message, "field": exc.field})

    def _reply_json(self, handler: BaseHTTPRequestHandler, status: int,
                    body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        if parts.path == "/v1/health":
            self._reply(handler, 200, "ok")
            return
        key = self.key()
        if key is None or not verify(key, "GET", handler.path, handler.headers.get(DATE_HEADER),
                                     handler.headers.get(SIGNATURE_HEADER)):
            self._reply(handler, 403, "requests to an agent must be signed by a server")
            return
        pieces = parts.path.strip("/").split("/")
        if len(pieces) != 4 or pieces[:2] != ["v1", "allocations"] or pieces[3] != "logs":
            self._reply(handler, 404, "no such path")
            return
        query = parse_qs(parts.query)
        stream = query.get("stream", ["stdout"])[0]
        follow = query.get("follow", ["false"])[0].lower() in ("1", "true", "yes", "on")
        try:
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            self._reply(handler, 400, "offset must be an integer")
            return
        if stream not in ("stdout", "stderr"):
            self._reply(handler, 400, "stream must be stdout or stderr")
            return
        found = self.alloc_logs(unquote(pieces[2]))
        if found is None:
            self._reply(handler, 404, "no such allocation on this node")
            return
        log_dir, finished = found
        start, data = read(log_dir, stream, offset)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("X-Federation-Log-Offset", str(start))
        if not follow:
            handler.send_header("X-Federation-Log-Next", str(start + len(data)))
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            handler.wfile.write(data)
            position = start + len(data)
            while follow:
                done = finished()  # read before the data, so nothing written last is missed
                start, data = read(log_dir, stream, position)
                if data:
                    handler.wfile.write(data)
                    handler.wfile.flush()
                    position = start + len(data)
                    continue
                if done:
                    break
                time.sleep(FOLLOW_POLL_SECONDS)
        except (BrokenPipeError, ConnectionResetError):
            return
