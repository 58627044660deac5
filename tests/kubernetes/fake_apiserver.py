"""A small Kubernetes API server: nodes and pods, over the real wire protocol.

It serves what a member-cluster connector and kubectl use: discovery (``/version``, ``/api``,
``/api/v1``, ``/apis``), lists with a ``resourceVersion``, ``labelSelector`` and
``fieldSelector`` (``spec.nodeName``), watches (``?watch=1&resourceVersion=..&
allowWatchBookmarks=true&timeoutSeconds=..``) streaming ``ADDED``/``MODIFIED``/``DELETED``
and ``BOOKMARK`` events as newline-delimited JSON, an ``ERROR`` event with a ``Status`` of
code 410 (``Expired``) when the resourceVersion asked for is older than the history kept,
``409 Conflict`` on an update carrying a stale ``metadata.resourceVersion`` (and
``AlreadyExists`` on a second create), pod ``binding`` (sets ``spec.nodeName``),
``pods/log`` and bearer-token authentication (401 otherwise).

A fake kubelet moves a bound ``Pending`` pod to ``Running`` after ``start_delay`` seconds.
Test hooks: ``add_node``, ``set_node_ready``, ``add_pod`` (a pod federation does not own),
``set_pod_phase``, ``drop_watches`` (cut every open watch), ``compact`` (forget the event
history: the next resume gets a 410), ``go_offline`` / ``go_online`` (the port stops
answering, as a cluster that became unreachable).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

HISTORY = 100_000
_RESOURCES = [
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
     "shortNames": ["no"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
     "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/binding", "singularName": "", "namespaced": True, "kind": "Binding",
     "verbs": ["create"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get"]},
    {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod",
     "verbs": ["get", "patch", "update"]},
]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(selector: str, obj: dict[str, Any]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        key, value = term.split("!=" if negate else "=", 1)
        current: Any = obj
        for part in key.lstrip("=").split("."):
            current = current.get(part) if isinstance(current, dict) else None
        equal = (current or "") == value
        if equal == negate:
            return False
    return True


class _Watch:
    def __init__(self, kind: str, namespace: str | None, labels: str, fields: str) -> None:
        self.kind, self.namespace, self.labels, self.fields = kind, namespace, labels, fields
        self.queue: deque[tuple[int, str, dict[str, Any]]] = deque()
        self.cond = threading.Condition()
        self.closed = False

    def wants(self, kind: str, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        return (kind == self.kind
                and (self.namespace is None or meta.get("namespace") == self.namespace)
                and _selector_matches(self.labels, meta.get("labels") or {})
                and _fields_match(self.fields, obj))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a watch cut, a connector stopping) is not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class FakeKubeAPIServer:
    def __init__(self, name: str = "member", token: str = "member-token",
                 start_delay: float = 0.2, bookmark_interval: float = 1.0,
                 tls_dir: str | None = None) -> None:
        """``tls_dir``: serve https with a CA made there (kubectl sends bearer tokens over
        https only); the kubeconfig then carries that CA."""
        self.name, self.token = name, token
        self.tls_dir = tls_dir
        self._ssl: Any = None
        self.ca_pem = b""
        self.start_delay, self.bookmark_interval = start_delay, bookmark_interval
        self.lock = threading.RLock()
        self.rv = itertools.count(1000)
        self.current_rv = 999
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.history: deque[tuple[int, str, str, dict[str, Any]]] = deque(maxlen=HISTORY)
        self.oldest_rv = 1000  # events at or after this are kept
        self.watches: set[_Watch] = set()
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.offline = False
        self._starting: dict[tuple[str, str], float] = {}  # bound Pending pods: when to run
        self._kubelet = threading.Thread(target=self._run_kubelet, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls_dir else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> FakeKubeAPIServer:
        if self.tls_dir:
            from federation import tls

            ca = tls.create_ca(self.tls_dir, common_name=f"{self.name} CA")
            cert = tls.create_cert("server", "", ca, self.tls_dir)
            self._ssl = tls.server_context(str(cert.cert_path), str(cert.key_path))
            self.ca_pem = ca.cert_path.read_bytes()
        self._listen()
        self._kubelet.start()
        return self

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), self._handler())
        if self._ssl is not None:
            server.socket = self._ssl.wrap_socket(server.socket, server_side=True)
        self.server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.1})
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.go_offline()
        self._kubelet.join(timeout=5)

    def go_offline(self) -> None:
        """Stop answering: the listening socket closes and every watch is cut."""
        self.offline = True
        self.drop_watches()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.drop_watches()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def go_online(self) -> None:
        self.offline = False
        self._listen()

    def kubeconfig(self, context: str | None = None) -> str:
        import base64

        context = context or self.name
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": self.name, "cluster": cluster}],
            "users": [{"name": f"{self.name}-admin", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": self.name,
                                                       "user": f"{self.name}-admin"}}],
        }, indent=2)

    # -- objects and events -----------------------------------------------------------------
    def _next_rv(self) -> int:
        self.current_rv = next(self.rv)
        return self.current_rv

    def _emit(self, kind: str, kind_event: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        snapshot = json.loads(json.dumps(obj))
        self.history.append((rv, kind, kind_event, snapshot))
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0][0]
        for watch in list(self.watches):
            if watch.wants(kind, snapshot):
                with watch.cond:
                    watch.queue.append((rv, kind_event, snapshot))
                    watch.cond.notify()

    def _store(self, kind: str, obj: dict[str, Any], event: str) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        if kind == "nodes":
            self.nodes[obj["metadata"]["name"]] = obj
        else:
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            self.pods[key] = obj
            if (obj.get("status") or {}).get("phase") == "Pending" and \
                    obj["spec"].get("nodeName"):
                self._starting.setdefault(key, time.monotonic() + self.start_delay)
            else:
                self._starting.pop(key, None)
        self._emit(kind, event, obj)
        return obj

    def add_node(self, name: str, cpu: str = "4", memory: str = "16Gi", zone: str = "",
                 region: str = "", labels: dict[str, str] | None = None,
                 taints: list[dict[str, str]] | None = None, ready: bool = True,
                 unschedulable: bool = False) -> dict[str, Any]:
        all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                      **(labels or {})}
        if zone:
            all_labels["topology.kubernetes.io/zone"] = zone
        if region:
            all_labels["topology.kubernetes.io/region"] = region
        node = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": all_labels,
                         "creationTimestamp": _now()},
            "spec": {"unschedulable": unschedulable, "taints": list(taints or [])},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                "reason": "KubeletReady", "lastHeartbeatTime": _now(),
                                "lastTransitionTime": _now()}],
                "nodeInfo": {"kubeletVersion": "v1.37.0", "kubeProxyVersion": "v1.37.0",
                             "architecture": "amd64", "operatingSystem": "linux",
                             "bootID": str(uuid.uuid4()), "machineID": uuid.uuid4().hex,
                             "systemUUID": str(uuid.uuid4()), "kernelVersion": "6.1.0",
                             "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "containerRuntimeVersion": "containerd://1.7.0"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                              {"type": "Hostname", "address": name}],
            },
        }
        with self.lock:
            return self._store("nodes", node, "ADDED")

    def set_node_ready(self, name: str, ready: bool) -> None:
        with self.lock:
            node = json.loads(json.dumps(self.nodes[name]))
            node["status"]["conditions"][0]["status"] = "True" if ready else "False"
            self._store("nodes", node, "MODIFIED")

    def add_pod(self, name: str, node: str, cpu: str = "500m", memory: str = "512Mi",
                namespace: str = "kube-system", labels: dict[str, str] | None = None,
                phase: str = "Running") -> dict[str, Any]:
        """A pod not made by federation (a daemon, another team's workload)."""
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
               "spec": {"nodeName": node, "containers": [
                   {"name": "main", "image": "pause",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}
        with self.lock:
            created = self._create_pod(namespace, pod)
            assert isinstance(created, dict)
            if phase != "Pending":
                self._set_phase(created, phase)
            return self.pods[(namespace, name)]

    def set_pod_phase(self, namespace: str, name: str, phase: str,
                      restarts: int | None = None, exit_code: int | None = None) -> None:
        with self.lock:
            pod = self.pods[(namespace, name)]
            self._set_phase(pod, phase, restarts, exit_code)

    def _set_phase(self, pod: dict[str, Any], phase: str, restarts: int | None = None,
                   exit_code: int | None = None) -> None:
        pod = json.loads(json.dumps(pod))
        st = pod.setdefault("status", {})
        st["phase"] = phase
        st.setdefault("startTime", _now())
        statuses = []
        for container in pod["spec"]["containers"]:
            state: dict[str, Any]
            if phase == "Running":
                state = {"running": {"startedAt": _now()}}
            elif phase in ("Succeeded", "Failed"):
                state = {"terminated": {"exitCode": exit_code if exit_code is not None else (
                    0 if phase == "Succeeded" else 1), "reason": "Completed" if
                    phase == "Succeeded" else "Error", "finishedAt": _now()}}
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
            previous = {c["name"]: c for c in st.get("containerStatuses") or []}
            count = restarts if restarts is not None else previous.get(
                container["name"], {}).get("restartCount", 0)
            statuses.append({"name": container["name"], "image": container.get("image", ""),
                             "ready": phase == "Running", "restartCount": count,
                             "state": state})
        st["containerStatuses"] = statuses
        st["conditions"] = [{"type": "Ready", "status": "True" if phase == "Running"
                             else "False"}]
        self._store("pods", pod, "MODIFIED")

    def _create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | tuple:
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not isinstance(name, str) or not name:
            return 422, status(422, "Invalid", "Pod \"\" is invalid: metadata.name: Required value")
        if (namespace, name) in self.pods:
            return 409, status(409, "AlreadyExists", f'pods "{name}" already exists')
        if not isinstance((body.get("spec") or {}).get("containers"), list) \
                or not body["spec"]["containers"]:
            return 422, status(422, "Invalid", f'Pod "{name}" is invalid: '
                               "spec.containers: Required value")
        meta.update({"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "creationTimestamp": _now()})
        body["kind"], body["apiVersion"] = "Pod", "v1"
        body["status"] = {"phase": "Pending"}
        body["spec"].setdefault("nodeName", None)
        self.logs[(namespace, name)] = f"log of pod {name}\n"
        return self._store("pods", body, "ADDED")

    def _delete_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.pods.pop((namespace, name), None)
        if pod is None:
            return None
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["resourceVersion"] = str(self._next_rv())
        pod["metadata"]["deletionTimestamp"] = _now()
        self._emit("pods", "DELETED", pod)
        return pod

    def _run_kubelet(self) -> None:
        """Bound Pending pods on a known node start ``start_delay`` seconds after binding."""
        while not self._stopped.wait(0.05):
            now = time.monotonic()
            with self.lock:
                for key, due in list(self._starting.items()):
                    pod = self.pods.get(key)
                    if pod is None:
                        self._starting.pop(key, None)
                    elif due <= now and pod["spec"]["nodeName"] in self.nodes:
                        self._set_phase(pod, "Running")

    def drop_watches(self) -> None:
        for watch in list(self.watches):
            with watch.cond:
                watch.closed = True
                watch.cond.notify()

    def compact(self) -> None:
        """Forget the history: a watch resumed from an older resourceVersion gets a 410."""
        with self.lock:
            self.history.clear()
            self.oldest_rv = self.current_rv + 1

    def federation_pods(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.pods.values()
                    if (p["metadata"].get("labels") or {}).get("federation.io/allocation")]

    # -- HTTP ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return None

            def _auth(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, status(401, "Unauthorized", "Unauthorized"))
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                self._dispatch("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._dispatch("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._dispatch("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._dispatch("DELETE")

            def _dispatch(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if fake.offline:
                    self.close_connection = True
                    return
                fake.requests.append((method, self.path))
                if not self._auth():
                    return
                parts = [p for p in url.path.split("/") if p]
                try:
                    self._route(method, parts, query)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
                if parts == ["version"]:
                    return self._send(200, {
                        "major": "1", "minor": "37", "gitVersion": "v1.37.0",
                        "gitCommit": "0" * 40, "gitTreeState": "clean",
                        "buildDate": "2026-08-01T00:00:00Z", "goVersion": "go1.25.0",
                        "compiler": "gc", "platform": "linux/amd64"})
                if parts == ["api"]:
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": [
                                                {"clientCIDR": "0.0.0.0/0",
                                                 "serverAddress": f"127.0.0.1:{fake.port}"}]})
                if parts == ["apis"]:
                    return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                            "groups": []})
                if parts == ["api", "v1"]:
                    return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1",
                                            "resources": _RESOURCES})
                if parts[:2] != ["api", "v1"]:
                    return self._send(404, status(404, "NotFound", "the server could not "
                                                  "find the requested resource"))
                rest = parts[2:]
                if rest[:1] == ["nodes"]:
                    return self._nodes(method, rest[1:], query)
                if rest == ["pods"] and method == "GET":
                    return self._list_or_watch("pods", None, query)
                if rest[:1] == ["namespaces"] and len(rest) == 3 and rest[2] == "bindings" \
                        and method == "POST":
                    # POST .../bindings names the pod in the Binding's metadata.
                    body = self._body() or {}
                    name = (body.get("metadata") or {}).get("name") or ""
                    return self._bind(rest[1], name, body)
                if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] == "pods":
                    return self._pods(method, rest[1], rest[3:], query)
                return self._send(404, status(404, "NotFound", "the server could not find "
                                              "the requested resource"))

            def _nodes(self, method: str, rest: list[str], query: dict[str, str]) -> None:
                if not rest and method == "GET":
                    return self._list_or_watch("nodes", None, query)
                if not rest and method == "POST":
                    body = self._body() or {}
                    name = (body.get("metadata") or {}).get("name")
                    with fake.lock:
                        if name in fake.nodes:
                            return self._send(409, status(409, "AlreadyExists",
                                                          f'nodes "{name}" already exists'))
                        node = fake._store("nodes", body, "ADDED")
                    return self._send(201, node)
                name = rest[0]
                with fake.lock:
                    node = fake.nodes.get(name)
                    if node is None:
                        return self._send(404, status(404, "NotFound",
                                                      f'nodes "{name}" not found'))
                    if method == "GET":
                        return self._send(200, node)
                    if method == "PUT":
                        body = self._body() or {}
                        if body.get("metadata", {}).get("resourceVersion") != \
                                node["metadata"]["resourceVersion"]:
                            return self._send(409, status(
                                409, "Conflict", f'Operation cannot be fulfilled on nodes '
                                f'"{name}": the object has been modified; please apply your '
                                "changes to the latest version and try again"))
                        body["metadata"]["uid"] = node["metadata"]["uid"]
                        return self._send(200, fake._store("nodes", body, "MODIFIED"))
                    if method == "DELETE":
                        gone = fake.nodes.pop(name)
                        gone["metadata"]["resourceVersion"] = str(fake._next_rv())
                        fake._emit("nodes", "DELETED", gone)
                        return self._send(200, gone)
                return self._send(405, status(405, "MethodNotAllowed", "not allowed"))

            def _pods(self, method: str, namespace: str, rest: list[str],
                      query: dict[str, str]) -> None:
                if not rest:
                    if method == "GET":
                        return self._list_or_watch("pods", namespace, query)
                    if method == "POST":
                        body = self._body()
                        if not isinstance(body, dict):
                            return self._send(400, status(400, "BadRequest", "not JSON"))
                        with fake.lock:
                            result = fake._create_pod(namespace, body)
                        if isinstance(result, tuple):
                            return self._send(*result)
                        return self._send(201, result)
                name = rest[0]
                with fake.lock:
                    pod = fake.pods.get((namespace, name))
                    if pod is None:
                        return self._send(404, status(404, "NotFound",
                                                      f'pods "{name}" not found'))
                    sub = rest[1] if len(rest) > 1 else None
                    if sub == "log" and method == "GET":
                        return self._send(200, fake.logs.get((namespace, name), "").encode(),
                                          "text/plain")
                    if sub == "binding" and method == "POST":
                        return self._bind(namespace, name, self._body() or {})
                    if method == "GET" and sub is None:
                        return self._send(200, pod)
                    if method == "PUT" and sub in (None, "status"):
                        body = self._body() or {}
                        if (body.get("metadata") or {}).get("resourceVersion") != \
                                pod["metadata"]["resourceVersion"]:
                            return self._send(409, status(
                                409, "Conflict", f'Operation cannot be fulfilled on pods '
                                f'"{name}": the object has been modified; please apply your '
                                "changes to the latest version and try again"))
                        merged = {**pod, **({"status": body.get("status", pod.get("status"))}
                                            if sub == "status" else body)}
                        merged["metadata"] = {**pod["metadata"],
                                              **{k: v for k, v in body["metadata"].items()
                                                 if k in ("labels", "annotations")}}
                        return self._send(200, fake._store("pods", merged, "MODIFIED"))
                    if method == "DELETE" and sub is None:
                        return self._send(200, fake._delete_pod(namespace, name))
                return self._send(405, status(405, "MethodNotAllowed", "not allowed"))

            def _bind(self, namespace: str, name: str, body: dict[str, Any]) -> None:
                with fake.lock:
                    pod = fake.pods.get((namespace, name))
                    if pod is None:
                        return self._send(404, status(404, "NotFound",
                                                      f'pods "{name}" not found'))
                    if pod["spec"].get("nodeName"):
                        return self._send(409, status(
                            409, "Conflict", f'pod {name} is already assigned to node '
                            f'"{pod["spec"]["nodeName"]}"'))
                    pod = json.loads(json.dumps(pod))
                    pod["spec"]["nodeName"] = (body.get("target") or {}).get("name")
                    fake._store("pods", pod, "MODIFIED")
                return self._send(201, {"kind": "Status", "apiVersion": "v1",
                                        "metadata": {}, "status": "Success", "code": 201})

            def _matching(self, kind: str, namespace: str | None,
                          query: dict[str, str]) -> list[dict[str, Any]]:
                source = fake.nodes.values() if kind == "nodes" else fake.pods.values()
                probe = _Watch(kind, namespace, query.get("labelSelector", ""),
                               query.get("fieldSelector", ""))
                return [o for o in source if probe.wants(kind, o)]

            def _list_or_watch(self, kind: str, namespace: str | None,
                               query: dict[str, str]) -> None:
                if query.get("watch") in ("1", "true"):
                    return self._watch(kind, namespace, query)
                with fake.lock:
                    items = [dict(o, metadata={k: v for k, v in o["metadata"].items()
                                               if not k.startswith("_")})
                             for o in self._matching(kind, namespace, query)]
                    rv = str(fake.current_rv)
                kind_name = "NodeList" if kind == "nodes" else "PodList"
                return self._send(200, {"kind": kind_name, "apiVersion": "v1",
                                        "metadata": {"resourceVersion": rv}, "items": items})

            def _watch(self, kind: str, namespace: str | None, query: dict[str, str]) -> None:
                watch = _Watch(kind, namespace, query.get("labelSelector", ""),
                               query.get("fieldSelector", ""))
                bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
                timeout = float(query.get("timeoutSeconds") or 1800)
                since = query.get("resourceVersion") or "0"
                expired = False
                with fake.lock:
                    start = int(since) if since.isdigit() else 0
                    if start == 0:
                        # No resourceVersion: the current objects as ADDED, then changes.
                        for obj in self._matching(kind, namespace, query):
                            watch.queue.append((int(obj["metadata"]["resourceVersion"]),
                                                "ADDED", json.loads(json.dumps(obj))))
                    elif start + 1 < fake.oldest_rv:
                        expired = True
                    else:
                        for rv, k, event, obj in fake.history:
                            if rv > start and watch.wants(k, obj):
                                watch.queue.append((rv, event, obj))
                    if not expired and not fake.offline:
                        fake.watches.add(watch)
                    elif not expired:
                        watch.closed = True
                    current = fake.current_rv
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if expired:
                        self._chunk({"type": "ERROR", "object": status(
                            410, "Expired", f"too old resource version: {start} "
                            f"({fake.oldest_rv - 1})")})
                        return
                    self._stream(watch, kind, bookmarks, timeout, current)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                finally:
                    fake.watches.discard(watch)
                    try:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True

            def _stream(self, watch: _Watch, kind: str, bookmarks: bool, timeout: float,
                        current: int) -> None:
                ends = time.monotonic() + timeout
                next_bookmark = time.monotonic() + fake.bookmark_interval
                last_rv = current
                while time.monotonic() < ends:
                    with watch.cond:
                        if not watch.queue and not watch.closed:
                            watch.cond.wait(min(0.2, max(0.0, next_bookmark - time.monotonic())))
                        events = list(watch.queue)
                        watch.queue.clear()
                        closed = watch.closed
                    # A cut stream delivers nothing more (a handler that raced the cut must
                    # not send what changed meanwhile): the client resumes from history.
                    if closed or fake.offline:
                        return
                    for rv, event, obj in events:
                        obj = dict(obj, metadata={k: v for k, v in obj["metadata"].items()
                                                  if not k.startswith("_")})
                        self._chunk({"type": event, "object": obj})
                        last_rv = max(last_rv, rv)
                    if closed or fake.offline:
                        return
                    if bookmarks and time.monotonic() >= next_bookmark:
                        with fake.lock:
                            if not watch.queue:
                                last_rv = max(last_rv, fake.current_rv)
                        self._chunk({"type": "BOOKMARK", "object": {
                            "kind": "Node" if kind == "nodes" else "Pod", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(last_rv)}}})
                        next_bookmark = time.monotonic() + fake.bookmark_interval

            def _chunk(self, event: dict[str, Any]) -> None:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler
