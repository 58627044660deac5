"""Request bodies are capped while they stream in: nothing past the cap is ever held."""

from __future__ import annotations

import select
import socket
import time

from tests.api.conftest import rss_kib
from tests.harness import Cluster

CHUNK = b"x" * (64 << 10)


def _send_chunked(port: int, path: str, total: int) -> tuple[int, bytes]:
    """Stream up to ``total`` bytes as a chunked body, stopping when the server answers.
    Returns (bytes sent, response head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    response = b""
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        deadline = time.monotonic() + 60
        while sent < total and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        end = time.monotonic() + 10
        while b"\r\n\r\n" not in response and time.monotonic() < end:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            response += data
    finally:
        sock.close()
    return sent, response


def test_a_200_mb_chunked_body_is_refused_with_413_without_being_buffered(
        single: Cluster) -> None:
    server = single.servers[0]
    assert server.proc is not None
    server.get("/v1/jobs")  # warm: the first request allocates what every request needs
    before = rss_kib(server.proc.pid)
    sent, response = _send_chunked(server.http_port, "/v1/jobs", 200 << 20)
    after = rss_kib(server.proc.pid)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b'"too_large"' in response or b"413" in response
    # The server stopped reading soon after the 1 MiB cap (socket buffers take a few MiB).
    assert sent < 32 << 20, f"the client could push {sent >> 20} MiB"
    assert after - before < 8 << 10, f"RSS grew by {(after - before) >> 10} MiB"
    assert server.get("/v1/health").status_code == 200


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP response: its head, then as many body bytes as its Content-Length says
    (the server may write the head and the body separately)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_content_length_over_the_cap_is_refused_before_the_body_is_read(
        single: Cluster) -> None:
    server = single.servers[0]
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    try:
        # Promise 100 MiB, send none of it: the answer must come anyway.
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 104857600\r\n\r\n")
        response = _read_response(sock)
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b'"code":"too_large"' in body and b'"field":"body"' in body


def test_a_body_just_under_the_cap_is_read_and_one_just_over_is_413(single: Cluster) -> None:
    server = single.servers[0]
    padding = {"id": "pad", "x": "a" * ((1 << 20) - 100)}
    under = server.post("/v1/jobs", json=padding)
    assert under.status_code == 400  # read and judged: an unknown field, not the size
    assert under.json()["error"]["code"] == "invalid"
    over = server.post("/v1/jobs", json={**padding, "x": "a" * (1 << 20)})
    assert over.status_code == 413
    assert over.json()["error"] == {"code": "too_large", "field": "body",
                                    "message": "the request body exceeds 1048576 bytes",
                                    "limit": 1048576}


def test_a_snapshot_restore_may_be_larger_than_the_general_cap(single: Cluster) -> None:
    server = single.servers[0]
    # 2 MiB of JSON: over the general cap, under the snapshot's; refused for its content.
    body = b'{"version": 1, "pad": "' + b"a" * (2 << 20) + b'"}'
    response = server.post("/v1/snapshot", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid"
