"""A cloud instance metadata service on 127.0.0.1: EC2 IMDSv2 or the GCE metadata server.

``FakeMetadata("aws", {...})`` speaks IMDSv2 as an instance that requires tokens does: a
``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` issues a token, and
``GET /latest/meta-data/<item>`` answers only with ``X-aws-ec2-metadata-token`` set to it
(401 otherwise). ``FakeMetadata("gcp", {...})`` answers ``GET /computeMetadata/v1/instance/
<item>`` only with ``Metadata-Flavor: Google`` (403 otherwise) and sets that header on its
answers, as the real server does. Items not in the table are 404. ``fail_next`` answers
that many requests with 503 first; ``requests`` records (method, path) of each request.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AWS_PREFIX = "/latest/meta-data/"
GCP_PREFIX = "/computeMetadata/v1/instance/"


class FakeMetadata:
    def __init__(self, cloud: str, items: Mapping[str, str], *, flavor_header: bool = True
                 ) -> None:
        if cloud not in ("aws", "gcp"):
            raise ValueError(f"unknown cloud {cloud!r}")
        self.cloud = cloud
        self.items = dict(items)
        self.flavor_header = flavor_header
        self.fail_next = 0
        self.requests: list[tuple[str, str]] = []
        self.tokens: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMetadata:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeMetadata:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        """Status and body for one request (the protocol, without the HTTP plumbing)."""
        with self.lock:
            self.requests.append((method, path))
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, "unavailable"
        if self.cloud == "aws":
            return self._aws(method, path, headers)
        return self._gcp(method, path, headers)

    def _aws(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, "method not allowed"
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, "missing or invalid token ttl"
            token = secrets.token_urlsafe(24)
            with self.lock:
                self.tokens.add(token)
            return 200, token
        if method != "GET" or not path.startswith(AWS_PREFIX):
            return 404, "not found"
        with self.lock:
            if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
                return 401, "unauthorized"
        item = path[len(AWS_PREFIX):]
        return (200, self.items[item]) if item in self.items else (404, "not found")

    def _gcp(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        if headers.get("Metadata-Flavor") != "Google":
            return 403, "missing Metadata-Flavor:Google header"
        item = path[len(GCP_PREFIX):] if path.startswith(GCP_PREFIX) else None
        if method != "GET" or item not in self.items:
            return 404, "not found"
        return 200, self.items[item]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = fake.answer(self.command, self.path, self.headers)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                if fake.cloud == "gcp" and fake.flavor_header:
                    self.send_header("Metadata-Flavor", "Google")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = _serve  # noqa: N815 - the names http.server dispatches to

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler
