"""The connector of one member cluster: the "agent" of all that cluster's nodes.

Two watcher threads keep a local copy of the member's nodes and pods (list, then watch from
the list's resourceVersion with bookmarks; resumed from the last version seen after a
dropped stream, relisted after a 410). A sync thread, woken by those changes and every
``period`` seconds, then:

1. registers each Ready, schedulable node as a federation node (``translate.registration``:
   capacity minus what the pods federation does not own request), again when that changes;
2. heart-beats the registered nodes every TTL/3 while the cluster answers (on threads of
   their own); a node that goes NotReady, is cordoned or tainted, or a cluster that stops
   answering, gets no heartbeats, so the servers mark it down after the TTL and its work is
   placed elsewhere;
3. creates the Pod of each allocation placed on its nodes (bound by ``spec.nodeName``),
   deletes the pods of allocations told to stop, lost (no second copy when a cluster comes
   back) or unknown, and reports each pod's phase and restarts as its allocation's status.

Registration, heartbeats and reports go through the public SDK (``link.FederationLink``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from federation.errors import Forbidden, NotFound, Unauthorized
from federation.members import translate
from federation.members.mirror import Mirror

if TYPE_CHECKING:
    from federation.members.kube import KubeAPI
    from federation.members.link import FederationLink

log = logging.getLogger("federation.members")
WATCH_TIMEOUT = 300
FULL_PASS_EVERY = 10.0  # seconds: a full pass even when nothing seems to have changed


@dataclass
class Registered:
    node_id: str
    token: str
    key: str


class Connector:
    def __init__(self, cluster: dict[str, Any], kube: KubeAPI, link: FederationLink,
                 ttl: float, period: float = 0.5, workers: int = 8) -> None:
        self.cluster = cluster
        self.name = cluster["name"]
        self.kube = kube
        self.link = link
        self.ttl = ttl
        self.period = period
        self.mirrors = {"nodes": Mirror(), "pods": Mirror()}
        self.lock = threading.Lock()
        self.registered: dict[str, Registered] = {}  # by Kubernetes node name
        self.creating: set[str] = set()
        self.deleting: set[str] = set()
        self.last_contact = 0.0
        self.last_beat = 0.0
        self._last_changes: tuple[Any, ...] = ()
        self._last_pass = 0.0
        self.expired = 0  # 410s met (each followed by a relist)
        self.errors = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix=f"member-{self.name}")
        # Heartbeats on their own threads: a round of them never holds up pods.
        self._beats = ThreadPoolExecutor(max_workers=max(2, workers // 2),
                                         thread_name_prefix=f"member-{self.name}-beat")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, sync: bool = True) -> Connector:
        """Start watching (and, with ``sync``, acting on what is seen)."""
        loops = [(lambda: self._follow("nodes"), "nodes"), (lambda: self._follow("pods"), "pods")]
        if sync:
            loops += [(self._sync_loop, "sync"), (self._beat_loop, "heartbeats")]
        for target, label in loops:
            thread = threading.Thread(target=target, name=f"member-{self.name}-{label}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._beats.shutdown(wait=False, cancel_futures=True)
        self.kube.close()

    def remove_pods(self) -> int:
        """Delete every pod this connector made (the cluster was removed)."""
        with self.lock:
            pods = [p for p in self.mirrors["pods"].items.values() if self._ours(p)]
        for pod in pods:
            meta = pod["metadata"]
            try:
                self.kube.delete_pod(meta["namespace"], meta["name"])
            except Exception as exc:  # noqa: BLE001 - best effort: the cluster may be gone
                log.warning("member %s: could not delete pod %s: %s", self.name,
                            meta["name"], exc)
        return len(pods)

    # -- watching --------------------------------------------------------------------------
    def _touch(self) -> None:
        self.last_contact = time.monotonic()

    def synced(self) -> bool:
        return all(m.lists for m in self.mirrors.values())

    def reachable(self) -> bool:
        return self.synced() and time.monotonic() - self.last_contact < self.ttl / 2

    def current(self) -> bool:
        """Whether the cluster's record is still the one this connector serves: once it is
        removed or replaced, this connector must not bring its nodes back."""
        return self.link.cluster_version(self.name) == self.cluster.get("version")

    def _follow(self, kind: str) -> None:
        mirror = self.mirrors[kind]
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if mirror.resource_version is None:
                    items, version = self.kube.list(kind)
                    with self.lock:
                        mirror.replace(items, version)
                    self._touch()
                    self._wake.set()
                for event in self.kube.watch(kind, str(mirror.resource_version), WATCH_TIMEOUT):
                    if self._stop.is_set():
                        return
                    self._touch()
                    kind_of = event.get("type")
                    obj = event.get("object") or {}
                    if kind_of == "ERROR":
                        if obj.get("code") == 410:
                            # The version we resume from is gone: list again.
                            self.expired += 1
                            mirror.resource_version = None
                            break
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                    if kind_of == "BOOKMARK":
                        mirror.bookmark(str((obj.get("metadata") or {}).get("resourceVersion")))
                        continue
                    with self.lock:
                        changed = mirror.apply(event)
                    if changed:
                        self._wake.set()
                backoff = 0.2
            except Exception as exc:  # noqa: BLE001 - the member may be unreachable: retry
                if self._stop.is_set():
                    return
                self.errors += 1
                log.info("member %s: %s watch interrupted (%s); resuming from %s", self.name,
                         kind, str(exc)[:200], mirror.resource_version)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- syncing ---------------------------------------------------------------------------
    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync_once()
            except Exception:  # noqa: BLE001 - one pass failing must not end the connector
                log.exception("member %s: sync pass failed", self.name)

    def _probe(self) -> None:
        """A quiet cluster sends no events: ask it whether it is there."""
        if time.monotonic() - self.last_contact < self.ttl / 4:
            return
        try:
            self.kube.ping()
            self._touch()
        except Exception as exc:  # noqa: BLE001 - unreachable: no contact recorded
            log.info("member %s: no answer: %s", self.name, str(exc)[:200])

    def _changes(self, reachable: bool) -> tuple[Any, ...]:
        """What a pass depends on: when none of it moved, a pass would do nothing."""
        nodes, pods = self.mirrors["nodes"], self.mirrors["pods"]
        return (nodes.applied, nodes.lists, pods.applied, pods.lists, self.link.alloc_version(),
                reachable, len(self.creating), len(self.deleting), len(self.registered))

    def sync_once(self) -> None:
        self._probe()
        if not self.synced():
            return
        if not self.current():
            return
        reachable = self.reachable()
        changes = self._changes(reachable)
        now = time.monotonic()
        if changes == self._last_changes and now - self._last_pass < FULL_PASS_EVERY:
            return  # nothing moved (an idle cluster)
        self._last_changes, self._last_pass = changes, now
        with self.lock:
            nodes = list(self.mirrors["nodes"].items.values())
            pods = list(self.mirrors["pods"].items.values())
        used = translate.foreign_usage(pods)
        eligible: dict[str, dict[str, Any]] = {}
        for node in nodes:
            if translate.takes_work(node):
                name = node["metadata"]["name"]
                eligible[name] = translate.registration(self.cluster, node,
                                                        used.get(name, (0, 0, 0)))
        for name in [n for n in list(self.registered) if n not in eligible]:
            log.info("member %s: node %s takes no work now: no more heartbeats", self.name,
                     name)
            del self.registered[name]
        if reachable:
            self._register(eligible)
        self._reconcile_pods(pods, reachable)

    def _beat_loop(self) -> None:
        """Every TTL/3, while the member answers, a heartbeat for each registered node."""
        while not self._stop.wait(max(0.1, self.last_beat + self.ttl / 3 - time.monotonic())):
            self.last_beat = time.monotonic()
            if self.reachable() and self.current():
                self._run_all(self._heartbeat, list(self.registered.items()), self._beats)

    def _register(self, eligible: dict[str, dict[str, Any]]) -> None:
        todo = [(name, body) for name, body in eligible.items()
                if self.registered.get(name) is None
                or self.registered[name].key != body["labels"][translate.REGISTRATION_LABEL]]

        def register(item: tuple[str, dict[str, Any]]) -> None:
            name, body = item
            key = body["labels"][translate.REGISTRATION_LABEL]
            existing = self.link.registered(body["name"])
            token = None
            if existing is not None:
                previous = (existing.get("labels") or {}).get(translate.REGISTRATION_LABEL)
                token = self.link.node_token(previous) if previous else None
            node_id, node_token = self.link.register(body, key, token)
            self.registered[name] = Registered(node_id, node_token, key)

        self._run_all(register, todo)

    def _heartbeat(self, item: tuple[str, Registered]) -> None:
        name, known = item
        try:
            self.link.heartbeat(known.node_id, known.token)
        except (NotFound, Unauthorized, Forbidden):
            # The servers forgot the node (collected while down) or its token: register it
            # again on the next pass.
            if self.registered.get(name) is known:
                del self.registered[name]
            raise

    def _run_all(self, fn: Callable[[Any], None], items: list[Any],
                 pool: ThreadPoolExecutor | None = None) -> None:
        if not items:
            return
        futures = [(pool or self._pool).submit(fn, item) for item in items]
        wait(futures)
        for future in futures:
            exc = future.exception()
            if exc is not None:
                self.errors += 1
                log.warning("member %s: %s failed: %s", self.name,
                            getattr(fn, "__name__", "call"), str(exc)[:300])

    def _ours(self, pod: dict[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return translate.is_owned(pod) and labels.get(translate.CLUSTER_LABEL) == \
            translate.label_value(self.name)

    def _reconcile_pods(self, pods: list[dict[str, Any]], reachable: bool) -> None:
        registered = list(self.registered.items())  # heartbeat threads may drop entries
        kube_node_of = {r.node_id: name for name, r in registered}
        tokens = {r.node_id: r.token for _, r in registered}
        owned: dict[str, dict[str, Any]] = {}
        for seen in pods:
            if self._ours(seen):
                alloc_id = translate.pod_alloc_id(seen)
                if alloc_id:
                    owned[alloc_id] = seen
        cluster_nodes = self.link.cluster_nodes(self.name)
        allocs = self.link.allocations(cluster_nodes)
        known = {a["id"] for a in allocs}
        creates: list[tuple[dict[str, Any], str]] = []
        deletes: list[dict[str, Any]] = []
        reports: dict[str, list[dict[str, Any]]] = {}
        pod: dict[str, Any] | None
        for alloc in allocs:
            pod = owned.get(alloc["id"])
            wanted = alloc["desired_status"] == "run" and alloc["client_status"] != "lost"
            if wanted:
                if pod is None:
                    kube_node = kube_node_of.get(alloc["node_id"])
                    if kube_node and alloc["client_status"] in ("pending", "running") \
                            and alloc["id"] not in self.creating:
                        creates.append((alloc, kube_node))
                    continue
                update = translate.alloc_update(pod)
                if update is not None and alloc["client_status"] in ("pending", "running") \
                        and translate.differs(update, alloc):
                    reports.setdefault(alloc["node_id"], []).append({"id": alloc["id"],
                                                                     **update})
            else:
                if pod is not None:
                    deletes.append(pod)
                elif alloc["client_status"] in ("pending", "running"):
                    reports.setdefault(alloc["node_id"], []).append(
                        {"id": alloc["id"], "client_status": "stopped",
                         "message": "pod deleted"})
        deletes += [pod for alloc_id, pod in owned.items() if alloc_id not in known]
        if not reachable:
            return
        deletes = [p for p in deletes if p["metadata"]["name"] not in self.deleting]
        for alloc, _ in creates:
            self.creating.add(alloc["id"])
        for pod in deletes:
            self.deleting.add(pod["metadata"]["name"])
        self._run_all(self._create, creates)
        self._run_all(self._delete, deletes)
        self._run_all(self._report, [(node_id, tokens[node_id], updates)
                                     for node_id, updates in reports.items()
                                     if node_id in tokens])
        with self.lock:
            present = self.mirrors["pods"].items
            names = {p["metadata"]["name"] for p in present.values()}
        self.deleting &= names
        self.creating -= {translate.pod_alloc_id(p) for p in present.values()}

    def _create(self, item: tuple[dict[str, Any], str]) -> None:
        alloc, kube_node = item
        try:
            body = translate.pod_for(alloc, self.cluster, kube_node, alloc["node_id"])
            self.kube.create_pod(body)
        except Exception:
            self.creating.discard(alloc["id"])
            raise

    def _delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.kube.delete_pod(meta["namespace"], meta["name"])
        except Exception:
            self.deleting.discard(meta["name"])
            raise

    def _report(self, item: tuple[str, str, list[dict[str, Any]]]) -> None:
        node_id, token, updates = item
        self.link.report(node_id, token, updates)
