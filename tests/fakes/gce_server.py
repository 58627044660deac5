"""A small Compute Engine v1 REST server: instances insert/get/list/delete and zone operations.

It speaks the JSON wire format the google-cloud-compute REST transport uses, so tests drive
it with the real client library (``client_options={"api_endpoint": "http://127.0.0.1:PORT"}``
and anonymous credentials). Inserts honour ``requestId`` (the same id returns the same
operation and creates nothing new); ``exhausted_zones`` makes inserts in those zones finish
with ``ZONE_RESOURCE_POOL_EXHAUSTED`` as the real service does. As there, an insert or delete
answers with an operation still ``RUNNING`` (the instance ``PROVISIONING`` or ``STOPPING``);
it finishes when the client next reads or waits on it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_PREFIX = "/compute/v1/projects/"
_ROUTE = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/"
    r"(?P<kind>instances|operations)(?:/(?P<name>[^/]+))?(?:/(?P<verb>wait))?$"
)
_FILTER = re.compile(r'labels\.(?P<key>[a-z0-9_-]+)\s*=\s*"?(?P<value>[^"\s)]*)"?')


class FakeGCE:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instances: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.operations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.by_request: dict[str, dict[str, Any]] = {}
        self.exhausted_zones: set[str] = set()
        self.insert_calls = 0
        self._ids = itertools.count(4_000_000_000_000_000_001)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeGCE:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- behaviour -------------------------------------------------------------------------

    def _link(self, project: str, zone: str, kind: str, name: str) -> str:
        return f"{self.url}{_PREFIX}{project}/zones/{zone}/{kind}/{name}"

    def _operation(
        self, project: str, zone: str, kind: str, target: str, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        op_id = str(next(self._ids))
        name = f"operation-{op_id}"
        op: dict[str, Any] = {
            "kind": "compute#operation", "id": op_id, "name": name,
            "operationType": kind, "status": "RUNNING", "progress": 0,
            "zone": f"{self.url}{_PREFIX}{project}/zones/{zone}",
            "targetLink": self._link(project, zone, "instances", target),
            "selfLink": self._link(project, zone, "operations", name),
        }  # fmt: skip
        if error is not None:
            op["error"] = {"errors": [error]}
            op["httpErrorStatusCode"] = 503
            op["httpErrorMessage"] = "SERVICE UNAVAILABLE"
        self.operations[(project, zone, name)] = op
        return op

    def finish(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        """An operation as a client polling it sees it: done, with its effect applied."""
        op = self.operations.get((project, zone, name))
        if op is None or op["status"] == "DONE":
            return op
        target = op["targetLink"].rsplit("/", 1)[-1]
        inst = self.instances.get((project, zone, target))
        if "error" not in op and inst is not None:
            if op["operationType"] == "insert":
                self.instances[(project, zone, target)] = {**inst, "status": "RUNNING"}
            elif op["operationType"] == "delete":
                del self.instances[(project, zone, target)]
        done = {**op, "status": "DONE", "progress": 100}
        self.operations[(project, zone, name)] = done
        return done

    def insert(
        self, project: str, zone: str, body: dict[str, Any], request_id: str | None
    ) -> tuple[int, dict[str, Any]]:
        self.insert_calls += 1
        if request_id and request_id in self.by_request:
            return 200, self.by_request[request_id]
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            return 400, _error(400, "invalid", f"Invalid value for field 'resource.name': '{name}'")
        if (project, zone, name) in self.instances:
            return 409, _error(
                409,
                "alreadyExists",
                f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists",
            )
        if zone in self.exhausted_zones:
            op = self._operation(project, zone, "insert", name, {
                "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                "message": f"The zone 'projects/{project}/zones/{zone}' does not have enough "
                           "resources available to fulfill the request.",
            })  # fmt: skip
        else:
            inst = dict(body)
            inst.update({
                "kind": "compute#instance", "id": str(next(self._ids)),
                "status": "PROVISIONING",
                "zone": f"{self.url}{_PREFIX}{project}/zones/{zone}",
                "selfLink": self._link(project, zone, "instances", name),
                "creationTimestamp": "2024-06-01T00:00:00.000-07:00",
            })  # fmt: skip
            for i, nic in enumerate(inst.get("networkInterfaces", [])):
                nic.setdefault("networkIP", f"10.128.0.{len(self.instances) + 2 + i}")
            self.instances[(project, zone, name)] = inst
            op = self._operation(project, zone, "insert", name)
        if request_id:
            self.by_request[request_id] = op
        return 200, op

    def delete(
        self, project: str, zone: str, name: str, request_id: str | None
    ) -> tuple[int, dict[str, Any]]:
        if request_id and request_id in self.by_request:
            return 200, self.by_request[request_id]
        inst = self.instances.get((project, zone, name))
        if inst is None:
            return 404, _error(
                404,
                "notFound",
                f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found",
            )
        self.instances[(project, zone, name)] = {**inst, "status": "STOPPING"}
        op = self._operation(project, zone, "delete", name)
        if request_id:
            self.by_request[request_id] = op
        return 200, op

    def list(
        self, project: str, zone: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        wanted = dict(
            m.group("key", "value") for m in _FILTER.finditer((query.get("filter") or [""])[0])
        )
        items = [
            inst for (p, z, _), inst in sorted(self.instances.items())
            if p == project and z == zone
            and all(inst.get("labels", {}).get(k) == v for k, v in wanted.items())
        ]  # fmt: skip
        size = int((query.get("maxResults") or ["500"])[0])
        start = int((query.get("pageToken") or ["0"])[0])
        body: dict[str, Any] = {
            "kind": "compute#instanceList",
            "items": items[start : start + size],
        }
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return 200, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                m = _ROUTE.match(url.path)
                if m is None:
                    self._reply(404, _error(404, "notFound", f"no route {url.path}"))
                    return
                project, zone, kind, name, verb = m.group("project", "zone", "kind", "name", "verb")
                request_id = (query.get("requestId") or [None])[0]
                with fake.lock:
                    if kind == "instances" and method == "POST" and name is None:
                        status, body = fake.insert(
                            project, zone, json.loads(raw or b"{}"), request_id
                        )
                    elif kind == "instances" and method == "GET" and name is None:
                        status, body = fake.list(project, zone, query)
                    elif kind == "instances" and method == "GET":
                        inst = fake.instances.get((project, zone, name))
                        status, body = (
                            (200, inst)
                            if inst
                            else (404, _error(404, "notFound", f"instance {name} not found"))
                        )
                    elif kind == "instances" and method == "DELETE":
                        status, body = fake.delete(project, zone, name, request_id)
                    elif kind == "operations" and name and (method == "GET" or verb == "wait"):
                        op = fake.finish(project, zone, name)
                        status, body = (
                            (200, op)
                            if op
                            else (404, _error(404, "notFound", f"operation {name} not found"))
                        )
                    else:
                        status, body = 405, _error(405, "badRequest", f"{method} {url.path}")
                self._reply(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler


def _error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
