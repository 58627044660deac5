"""The node agent: registers the node, heart-beats, follows its allocations, reports status.

``Agent.run(stop)`` is the whole life of `federation agent`:

1. register (capacity detected unless given; the agent's log endpoint and the kind of
   resource limits in force travel as labels), keeping the id the servers know it by;
2. adopt what a previous run of the agent left (``TaskRunner`` per allocation directory);
3. heart-beat every ``heartbeat_ttl / 3`` seconds and report status changes in batches;
4. follow the node's allocations with a blocking query on the state index and reconcile:
   start what should run and does not, stop what should not run and does.

Any server address works: calls move to the next server on failure (``remote.Servers``).

Credentials: the agent joins with a join credential (``--join-token-file``, or
``FEDERATION_TOKEN``) that it drops once registered; from then on it holds only its node
credential (``node.json``, 0600 in a 0700 data dir), presents it alone, and re-reads the join
file only if the servers forget the node. See ``federation.agent.identity`` for what keeps
tasks away from them.
Stopping the agent leaves its tasks running (a restarted agent adopts them) unless
``stop_tasks_on_exit`` is set, as `federation dev` does.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federation.agent import drivers, identity, orphans
from federation.agent.limits import detect_limits
from federation.agent.logs import LogServer
from federation.agent.marks import Marks
from federation.agent.remote import Servers, ServersUnreachable
from federation.agent.runner import TERMINAL_PHASES, TaskRunner, client_update
from federation.agent.store import Store
from federation.errors import FederationError, Forbidden, NotFound, Unauthorized

log = logging.getLogger("federation.agent")
LIMITS_LABEL = "federation/limits"
WATCH_WAIT_SECONDS = 30.0
REPORT_BATCH = 500


def detect_cpu_milli() -> int:
    return (os.cpu_count() or 1) * 1000


def detect_memory_mib() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1024


@dataclass
class AgentConfig:
    servers: list[str]
    data_dir: str
    name: str = field(default_factory=socket.gethostname)
    pool: str = "default"
    provider: str = "onprem"
    region: str = ""
    zone: str = ""
    rack: str = ""
    instance_type: str = ""
    instance_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cpu_milli: int | None = None
    memory_mib: int | None = None
    gpu: int = 0
    token: str | None = None
    http_bind: str = "127.0.0.1:0"
    heartbeat_ttl: float | None = None  # None: ask the servers
    log_max_bytes: int = 10 << 20
    log_max_files: int = 3
    stop_tasks_on_exit: bool = False
    docker_host: str = field(
        default_factory=lambda: os.environ.get("DOCKER_HOST") or drivers.DEFAULT_DOCKER_HOST)
    join_token_file: str | None = None
    task_user: str | None = None  # None: nobody when the agent is root
    advertise: str | None = None  # the IP servers reach this agent's endpoint at
    tls_ca: str | None = None  # verify servers with this CA (and serve logs over TLS)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_require_client_cert: bool = False  # servers must present a certificate of tls_ca


def local_ip_towards(server_url: str) -> str:
    """The local IP this host uses to reach ``server_url`` (no packet is sent)."""
    from urllib.parse import urlsplit

    host = urlsplit(server_url if "://" in server_url else f"http://{server_url}").hostname
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((host or "127.0.0.1", 9))
            return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def registration(config: AgentConfig, labels: dict[str, str]) -> dict[str, Any]:
    """The ``POST /v1/nodes`` body for this node; ``labels`` are added to the configured ones.

    ``instance_id`` is what the autoscaler matches against its provider's instance list.
    """
    return {
        "name": config.name, "pool": config.pool, "provider": config.provider,
        "region": config.region, "zone": config.zone, "rack": config.rack,
        "instance_type": config.instance_type, "instance_id": config.instance_id,
        "labels": {**config.labels, **labels},
        "capacity": {"cpu_milli": config.cpu_milli or detect_cpu_milli(),
                     "memory_mib": config.memory_mib or detect_memory_mib(),
                     "gpu": config.gpu},
    }


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        from federation import tls

        self.config = config
        self.task_user = identity.task_user(config.task_user)
        if not self.task_user.switches:
            log.warning("tasks run as the agent's own user (%s): they can read its data dir "
                        "and node credential; run the agent as root to give tasks another "
                        "identity (--task-user)", self.task_user.name)
        self.store = Store(config.data_dir)
        self._join_token = config.token or self._read_join_file()
        config.token = None  # held once, in _join_token, until registered
        verify: Any = True
        if config.tls_ca:
            verify = tls.client_context(config.tls_ca, config.tls_cert, config.tls_key)
        self.servers = Servers(config.servers, self._join_token, verify=verify,
                               server_name=tls.server_name(config.region))
        # What this agent marks its tasks with, to find them again without its data dir.
        self.marks = Marks(config.name, str(self.store.root))
        self.limits = detect_limits(self.marks.group())
        self.limits.weigh(config.cpu_milli or detect_cpu_milli())
        self.docker_host = config.docker_host
        self.node_id: str | None = None
        self._node_token: str | None = None
        self._signing_key: str | None = None
        known = self.store.node() or {}
        if known.get("name") == config.name and known.get("token"):
            self.node_id, self._node_token = known.get("id"), known["token"]
            self._signing_key = known.get("signing_key")
        self._lock = threading.Lock()
        self._register_lock = threading.Lock()
        self.runners: dict[str, TaskRunner] = {}
        self.finished: set[str] = set()  # allocations that ended here: never run them again
        self._ports_in_use: set[int] = set()
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_cv = threading.Condition()
        self._health_cache: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self.stop = threading.Event()
        self._shut_down = False
        self.ttl = 10.0
        tls_context = None
        if config.tls_cert and config.tls_key:
            tls_context = tls.server_context(config.tls_cert, config.tls_key, config.tls_ca,
                                             config.tls_require_client_cert)
        self.log_server = LogServer(config.http_bind, self._alloc_logs, self._key,
                                    tls_context=tls_context, runner_of=self._runner_of)

    # -- identity ------------------------------------------------------------------------
    def _key(self) -> str | None:
        return self._signing_key

    def _read_join_file(self) -> str | None:
        path = self.config.join_token_file
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            log.warning("cannot read the join token file %s: %s", path, exc.strerror)
            return None

    def advertised_url(self) -> str:
        """The endpoint address to register: an IP the servers can reach (and validate)."""
        bound, port = self.log_server.server.server_address[:2]
        host = bound.decode() if isinstance(bound, bytes) else str(bound)
        scheme = "https" if self.log_server.tls else "http"
        if self.config.advertise:
            host = self.config.advertise
        elif host in ("0.0.0.0", "::"):
            host = local_ip_towards(self.servers.addresses[0])
        return f"{scheme}://{host}:{port}"

    def node_headers(self) -> dict[str, str]:
        return {"X-Node-Token": self._node_token or ""}

    def register(self) -> None:
        with self._register_lock:
            cfg = self.config
            body = {**registration(cfg, {LIMITS_LABEL: self.limits.mode}),
                    "http_address": self.advertised_url()}
            # The node's own credential vouches for taking its name again; the join secret
            # (if still held) for a first registration.
            headers = {"X-Node-Token": self._node_token} if self._node_token else {}
            try:
                answer, _ = self.servers.call("POST", "/v1/nodes", json_body=body,
                                              headers=headers, deadline=3600, stop=self.stop)
            except (Forbidden, Unauthorized) as exc:
                join = self._read_join_file()
                if self._join_token is not None or join is None:
                    raise
                log.warning("the servers refused the node credential (%s): joining again "
                            "with the join token", exc.message)
                self.servers.set_token(join)
                try:
                    answer, _ = self.servers.call("POST", "/v1/nodes", json_body=body,
                                                  headers=headers, deadline=3600,
                                                  stop=self.stop)
                finally:
                    self.servers.set_token(None)
            self.node_id, self._node_token = answer["id"], answer["token"]
            self._signing_key = answer.get("signing_key")
            self.store.save_node({"id": self.node_id, "token": self._node_token,
                                  "signing_key": self._signing_key, "name": cfg.name})
            # Registered: from now on only the node credential is presented or held.
            self._join_token = None
            self.servers.set_token(None)
            log.info("registered as node %s (%s); limits by %s; logs at %s; tasks run as %s",
                     self.node_id, cfg.name, self.limits.mode, body["http_address"],
                     self.task_user.name)

    def _call_as_node(self, method: str, suffix: str, **kwargs: Any) -> tuple[Any, Any]:
        """A call on ``/v1/nodes/<this node><suffix>`` with the node token; registers again
        (once) when the servers no longer know this node or its token."""
        try:
            return self.servers.call(method, f"/v1/nodes/{self.node_id}{suffix}",
                                     headers=self.node_headers(), stop=self.stop, **kwargs)
        except (NotFound, Forbidden, Unauthorized) as exc:
            if exc.field is not None:
                raise  # about a field of the request, not about who we are
            log.warning("the servers do not accept this node (%s): registering again",
                        exc.message)
            self.register()
            return self.servers.call(method, f"/v1/nodes/{self.node_id}{suffix}",
                                     headers=self.node_headers(), stop=self.stop, **kwargs)

    # -- what tasks see --------------------------------------------------------------------
    def pick_port(self) -> int:
        with self._lock:
            for _ in range(100):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", 0))
                    port = int(sock.getsockname()[1])
                if port not in self._ports_in_use:
                    self._ports_in_use.add(port)
                    return port
        raise FederationError("no free port found")

    def task_env(self, alloc: dict[str, Any], ports: dict[str, int], base: Path) -> dict[str, str]:
        # The agent's own FEDERATION_* settings (its credentials above all) stay with it, and
        # no variable may carry its node credential or signing key, whatever its name.
        secrets = [s for s in (self._node_token, self._signing_key, self._join_token) if s]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FEDERATION_") and not any(s in v for s in secrets)}
        declared = (alloc.get("task") or {}).get("env") or {}
        env.update({str(k): str(v) for k, v in declared.items()})
        env.update({
            "FEDERATION_ALLOC_ID": alloc["id"],
            "FEDERATION_JOB_ID": str(alloc.get("job_id", "")),
            "FEDERATION_ALLOC_INDEX": str(alloc.get("index", 0)),
            "FEDERATION_GROUP": str(alloc.get("group", "")),
            "FEDERATION_NODE_ID": self.node_id or "",
            "FEDERATION_ALLOC_DIR": str(base),
            # Found again by a restarted agent that lost its data directory (orphans.py).
            **self.marks.env(),
        })
        for name, port in ports.items():
            env[f"FEDERATION_PORT_{name.upper()}"] = str(port)
        return env

    def task_identity(self, task: dict[str, Any], local_dir: Path) -> dict[str, Any]:
        """Executor spec fields that run the task as the task user (exec driver; the docker
        driver's CLI needs the agent's access to the docker socket)."""
        user = self.task_user
        if not user.switches or task.get("driver", "exec") != "exec":
            return {}
        os.chown(local_dir, user.uid, user.gid)  # the task's working directory is its own
        return {"uid": user.uid, "gid": user.gid}

    def health_for(self, alloc: dict[str, Any]) -> dict[str, Any] | None:
        """The task's health check: on the allocation, or else in its job's spec."""
        task = alloc.get("task") or {}
        if "health" in task:
            return task["health"] or None
        key = (str(alloc.get("job_id")), alloc.get("job_version"))
        if key not in self._health_cache:
            try:
                job, _ = self.servers.call("GET", f"/v1/jobs/{key[0]}", stop=self.stop)
            except FederationError as exc:
                log.warning("allocation %s: cannot read job %s: %s", alloc["id"], key[0], exc)
                return None
            found = None
            for group in job.get("groups") or []:
                if group.get("name") == alloc.get("group"):
                    found = (group.get("task") or {}).get("health")
            self._health_cache[key] = found
        return self._health_cache[key]

    # -- status reports ------------------------------------------------------------------
    def report(self, update: dict[str, Any]) -> None:
        with self._pending_cv:
            merged = {**self._pending.get(update["id"], {}), **update}
            self._pending[update["id"]] = merged
            self._pending_cv.notify()

    def _report_loop(self) -> None:
        backoff = 0.1
        while not self.stop.is_set():
            with self._pending_cv:
                while not self._pending and not self.stop.is_set():
                    self._pending_cv.wait(1.0)
                batch = dict(list(self._pending.items())[:REPORT_BATCH])
            if not batch:
                continue
            try:
                self._call_as_node("POST", "/allocations",
                                   json_body={"updates": list(batch.values())}, deadline=30)
            except (NotFound, Forbidden) as exc:
                # One update names an allocation the servers no longer give this node.
                dropped = self._update_at(exc.field, list(batch))
                log.warning("status report refused (%s): dropping %s", exc.message, dropped)
                batch = {dropped: batch[dropped]} if dropped else batch
            except FederationError as exc:
                log.warning("status report failed, will retry: %s", exc.message)
                self.stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            backoff = 0.1
            with self._pending_cv:
                for alloc_id, sent in batch.items():
                    if self._pending.get(alloc_id) == sent:
                        del self._pending[alloc_id]

    @staticmethod
    def _update_at(field_name: str | None, ids: list[str]) -> str | None:
        if field_name and field_name.startswith("updates["):
            position = field_name[len("updates["):].split("]", 1)[0]
            if position.isdigit() and int(position) < len(ids):
                return ids[int(position)]
        return None

    # -- heartbeat -----------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        """A beat every TTL/3, counted from the start of the last one that was answered.
        A beat no server took (a leader change: the dead server, followers that cannot
        reach a leader yet) is tried again within a second or so, not a whole interval
        later: waiting out the interval after the call's own retries had let a failover
        of a few seconds stretch the gap between two answered beats past the TTL."""
        interval = max(0.1, self.ttl / 3)
        due = time.monotonic() + interval
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            started = time.monotonic()
            try:
                reply, _ = self._call_as_node("POST", "/heartbeat", json_body={},
                                              deadline=max(1.0, interval),
                                              timeout=max(1.0, interval))
            except FederationError as exc:
                log.warning("heartbeat failed: %s", exc.message)
                retry = min(1.0, interval / 3)
                due = time.monotonic() + random.uniform(retry / 2, retry)
                continue
            self._follow_ttl(reply)
            interval = max(0.1, self.ttl / 3)
            due = started + interval

    def _follow_ttl(self, reply: Any) -> None:
        """The servers tell a large cluster a longer TTL (``--max-heartbeats-per-second``):
        beat at the rhythm they ask, unless this agent was given a TTL of its own."""
        told = reply.get("heartbeat_ttl") if isinstance(reply, dict) else None
        if self.config.heartbeat_ttl is not None or isinstance(told, bool) \
                or not isinstance(told, int | float) or not 0 < told <= 3600:
            return
        if told != self.ttl:
            log.info("heartbeat TTL %gs (was %gs): beating every %gs", told, self.ttl, told / 3)
            self.ttl = float(told)

    # -- allocations ---------------------------------------------------------------------
    def _watch_loop(self) -> None:
        index = 0
        while not self.stop.is_set():
            params: dict[str, Any] = {}
            if index:
                params = {"index": index, "wait": WATCH_WAIT_SECONDS}
            try:
                allocs, headers = self._call_as_node(
                    "GET", "/allocations", params=params,
                    timeout=WATCH_WAIT_SECONDS + 10, deadline=WATCH_WAIT_SECONDS + 30)
            except ServersUnreachable as exc:
                log.warning("cannot reach the servers: %s", exc.message)
                continue
            except FederationError as exc:
                log.warning("reading allocations failed: %s", exc.message)
                self.stop.wait(1.0)
                continue
            index = int(headers.get("X-Federation-Index", index) or 0)
            self.reconcile(allocs)

    def reconcile(self, allocs: list[dict[str, Any]]) -> None:
        listed = {a["id"] for a in allocs}
        for alloc in sorted(allocs, key=lambda a: (a.get("job_id", ""), a.get("index", 0))):
            with self._lock:
                runner = self.runners.get(alloc["id"])
            if runner is not None:
                runner.update(alloc)
                continue
            if alloc["id"] in self.finished:
                continue  # ended here earlier: never run an allocation twice
            if alloc.get("desired_status", "run") != "run":
                continue
            if alloc.get("client_status") not in ("pending", None):
                # The servers think it ran here, but this agent has no record of it.
                if alloc.get("client_status") == "running":
                    self.report({"id": alloc["id"], "client_status": "lost",
                                 "message": "the node has no record of this allocation"})
                continue
            self._start_runner(alloc, None)
        with self._lock:
            gone = [r for r in self.runners.values() if r.id not in listed]
        for runner in gone:
            runner.request_stop("no longer placed on this node")
        for alloc_id in self.finished - listed:
            # The servers forgot it: so can this node (its directory and logs go too).
            self.finished.discard(alloc_id)
            self.store.remove(alloc_id)

    def _start_runner(self, alloc: dict[str, Any], state: dict[str, Any] | None) -> None:
        self.store.save_alloc(alloc)
        runner = TaskRunner(self, alloc, state)
        if state is None:
            self.store.save_state(alloc["id"], runner.state)
        with self._lock:
            self.runners[alloc["id"]] = runner
            self._ports_in_use.update(int(p) for p in (runner.state.get("ports") or {}).values())
        runner.start()

    def runner_done(self, runner: TaskRunner) -> None:
        with self._lock:
            if self.runners.get(runner.id) is runner:
                del self.runners[runner.id]
            self.finished.add(runner.id)
            self._ports_in_use.difference_update(
                int(p) for p in (runner.state.get("ports") or {}).values())

    def _stop_orphans(self) -> None:
        """Stop the tasks an earlier run of this agent started and left no record of (its
        data directory was wiped or lost): only the allocations on disk are adopted."""
        keep = set()
        for alloc_id in self.store.known_allocs():
            _, state = self.store.load(alloc_id)
            if state is not None and state.get("phase") not in TERMINAL_PHASES:
                keep.add(alloc_id)
        stopped = orphans.stop_orphans(self.marks, keep, self.limits, self.docker_host)
        if stopped:
            log.warning("stopped the tasks of %d allocation(s) left by an earlier run of this "
                        "agent without a record: %s", len(stopped), ", ".join(stopped))

    def _recover(self) -> None:
        """Pick up the allocations a previous run of this agent left on disk."""
        for alloc_id in self.store.known_allocs():
            alloc, state = self.store.load(alloc_id)
            if alloc is None or state is None:
                continue
            runner_state = dict(state)
            if runner_state.get("phase") in TERMINAL_PHASES:
                self.report(client_update(alloc_id, runner_state))
                self.finished.add(alloc_id)
                continue
            self._start_runner(alloc, runner_state)

    def _runner_of(self, alloc_id: str) -> TaskRunner | None:
        with self._lock:
            return self.runners.get(alloc_id)

    def _alloc_logs(self, alloc_id: str) -> tuple[Path, Any] | None:
        try:
            base = self.store.alloc_dir(alloc_id)
        except ValueError:
            return None
        if not (base / "state.json").exists():
            return None

        def done() -> bool:
            with self._lock:
                runner = self.runners.get(alloc_id)
            return runner is None or runner.finished()

        return base / "logs", done

    # -- life ----------------------------------------------------------------------------
    def run(self) -> None:
        identity.make_non_dumpable()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.log_server.start()
        if self.config.heartbeat_ttl is not None:
            self.ttl = self.config.heartbeat_ttl
        else:
            settings, _ = self.servers.call("GET", "/v1/agent/settings", deadline=3600,
                                            stop=self.stop)
            self.ttl = float(settings.get("heartbeat_ttl", 10.0))
        self._stop_orphans()
        self.register()
        self._recover()
        threads = [threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
                   threading.Thread(target=self._report_loop, name="report", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            self._watch_loop()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        self.stop.set()
        if self.config.stop_tasks_on_exit:
            with self._lock:
                runners = list(self.runners.values())
            for runner in runners:
                runner.request_stop("the agent is shutting down")
            deadline = time.monotonic() + 30
            for runner in runners:
                runner.thread.join(max(0.0, deadline - time.monotonic()))
        self.log_server.stop()
        self.servers.close()
        self.limits.close()
