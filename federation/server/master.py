"""One master process: the Raft node, the HTTP API served by uvicorn, and leader loops.

The master is the composition root: it builds every leader loop (node health, autoscaler,
scheduler and cron dispatch, garbage collection) from itself as their
:class:`~federation.ports.LeaderContext`, with the settings, clock and providers it was given.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import uvicorn
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from federation.api.admission import TurnBudget
from federation.api.app import create_app
from federation.api.metrics import ServerMetrics
from federation.autoscaler.executor import Executor, ExecutorSettings, default_bootstrap
from federation.errors import CommitTimeout, FederationError, NoLeader, error_from_body
from federation.members.manager import member_clusters_loop
from federation.providers.base import Provider
from federation.raft.node import RaftConfig, RaftNode, wait_result
from federation.server.config import ServerConfig, split_host_port
from federation.server.fence import Fenced
from federation.server.gc_loop import gc_loop
from federation.server.leader import LeaderLoops, Loop
from federation.server.liveness import Liveness, Rhythm
from federation.server.node_health import node_health_loop
from federation.server.relay import Relay, relay_key
from federation.server.scheduling import Scheduler
from federation.state.machine import WATCH_ALL, StateMachine
from federation.tls import agent_name, client_context, private_dir

KEEP_ALIVE_SECONDS = 75

log = logging.getLogger("federation.server")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Master:
    """Everything one `federation server` runs. ``start()`` returns once the API listens."""

    def __init__(self, config: ServerConfig, tracer_provider: TracerProvider | None = None,
                 *, autoscaler: ExecutorSettings | None = None,
                 providers: Mapping[str, Provider] | None = None,
                 clock: Callable[[], float] = time.time):
        """``autoscaler`` settings default to the environment's (``FEDERATION_AUTOSCALER_*``);
        ``providers`` replace the plugins of those names (tests wrap a real provider);
        ``clock`` is the wall clock every leader loop reads."""
        config.validate()
        self._autoscaler = autoscaler or ExecutorSettings.from_env(os.environ)
        self._providers = dict(providers or {})
        self._clock = clock
        self.config = config
        self.metrics = ServerMetrics()
        self.tracer_provider = tracer_provider
        self.tracer = trace.get_tracer("federation.raft", tracer_provider=tracer_provider)
        self._token_key = hashlib.sha256(
            b"federation-node-token:" + config.secret.encode()).digest()
        self._acl_key = hashlib.sha256(b"federation-acl-token:" + config.secret.encode()).digest()
        self._signing_key = hashlib.sha256(
            b"federation-agent-signing:" + config.secret.encode()).digest()
        # The join secret: given (--join-token-file), or derived from the cluster secret, so
        # every master accepts what the autoscaler hands to the machines it launches.
        self.join_token = config.join_token or self.node_token("agent-join")
        self.raft: RaftNode | None = None
        self.loops = LeaderLoops(catch_up=self._caught_up)
        self.leader_claim: str | None = None  # this server's, from when it last gained leadership
        self.scheduler: Scheduler | None = None  # built with the leader loops, at start
        # Heartbeats this server received (the leader judges by them): never committed.
        self.liveness = Liveness()
        # The TTL agents are told, scaled with the number of nodes, and the one judged by.
        self.rhythm = Rhythm(config.heartbeat_ttl, config.max_heartbeats_per_second)
        # Paces the API's requests per turn of its event loop; heartbeats are never paced.
        self.admission = TurnBudget(config.requests_per_turn)
        self.relay_key = relay_key(config.secret)
        self.relay = Relay(config.id, self.relay_key, self._leader_http,
                           interval=min(1.0, config.heartbeat_ttl / 10),
                           verify=self._server_verify())
        self._http: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Blocking queries waiting, by watch key (WATCH_ALL: any change at all).
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop,
                                           asyncio.Future[None]]]] = {}
        self._waiters_lock = threading.Lock()
        self.wakeups = 0  # blocking queries woken (tests and metrics)
        self.changed = threading.Condition()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        private_dir(self.config.data_dir)  # the journal holds the state: owner only
        self.raft = RaftNode(RaftConfig(
            self_addr=self.config.raft, peers=list(self.config.peers),
            data_dir=self.config.data_dir, secret=self.config.secret,
            settings=self.config.raft_settings,
        ))
        for name, loop in self.leader_loops():
            self.loops.add(name, loop)
        self.raft.on_leadership(lambda _leads: self.relay.reset())
        self.raft.on_leadership(self.loops.on_leadership)
        self.raft.on_change(self._on_applied)
        threading.Thread(target=self._announce, name="announce", daemon=True).start()
        self.relay.start()
        host, port = split_host_port(self.config.http, "--http")
        app = create_app(self)
        self._http = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False,
            lifespan="off", timeout_graceful_shutdown=2, **self._tls_options(),
            # Idle connections stay open longer than the slowest heartbeat rhythm (a large
            # cluster beats every 20 s or more): no new TCP and TLS handshake per beat.
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ))
        self._http_thread = threading.Thread(target=self._http.run, name="http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + timeout
        while not self._http.started:
            if not self._http_thread.is_alive():
                raise FederationError(f"the HTTP API could not listen on {self.config.http}")
            if time.monotonic() > deadline:
                raise FederationError(f"the HTTP API did not start within {timeout:g}s")
            time.sleep(0.01)
        log.info("server %s: API on %s, Raft on %s", self.config.id, self.config.http_url,
                 self.config.raft)

    def leader_loops(self) -> list[tuple[str, Loop]]:
        """Every leader-only loop, built with a fenced view of this master as its context
        (``federation.server.fence``)."""
        fenced = Fenced(self)  # what the loops commit carries this term's leader claim
        executor = Executor(
            fenced, tracer=self.tracer, settings=self._autoscaler, providers=self._providers,
            # The join secret, never the management token: a launched machine can only join.
            bootstrap=default_bootstrap(self.join_token),
            on_tick=self.metrics.autoscaler_ticks.inc)
        self.scheduler = Scheduler(fenced)
        return [
            ("node-health", node_health_loop(fenced, self.rhythm, self.liveness,
                                             self.config.heartbeat_grace)),
            ("autoscaler", executor.run),
            ("scheduler", self.scheduler.run),
            ("gc", gc_loop(fenced, self.config.gc)),
            ("member-clusters", member_clusters_loop(self)),
        ]

    @property
    def stopping(self) -> threading.Event:
        """Set when this server is stopping (for its background threads to end on)."""
        return self._stop

    def now(self) -> float:
        return self._clock()

    def wait(self) -> None:
        """Block until stop() is called or the HTTP server exits."""
        while not self._stop.is_set():
            if self._http_thread is not None and not self._http_thread.is_alive():
                break
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._wake_waiters()  # blocking queries answer now instead of being cut at shutdown
        self.loops.stop()
        self.relay.stop()
        if self._http is not None:
            self._http.should_exit = True
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
        if self.raft is not None:
            self.raft.stop()

    def _announce(self) -> None:
        """Record this server's addresses in the replicated state (for leader hints)."""
        command = {"type": "server.upsert", "id": f"server-{self.config.id}-{time.time_ns()}",
                   "server": {"id": self.config.id, "raft": self.config.raft,
                              "http": self.config.http_url}}
        while not self._stop.is_set():
            try:
                self.commit_sync(dict(command))
                return
            except FederationError:
                self._stop.wait(0.5)

    # -- state access --------------------------------------------------------------------
    @property
    def machine(self) -> StateMachine:
        if self.raft is None:
            raise NoLeader("the server is starting")
        return self.raft.machine

    def node_token(self, registration_id: str) -> str:
        """The token a node gets at registration: the same on every master and every retry
        of one registration, unguessable without the cluster secret."""
        return hmac.new(self._token_key, registration_id.encode(), hashlib.sha256).hexdigest()

    def acl_secret(self, command_id: str) -> str:
        """An ACL token's secret: the same on every master and every retry of one request."""
        digest = hmac.new(self._acl_key, command_id.encode(), hashlib.sha256).digest()
        return str(uuid.UUID(bytes=digest[:16]))

    def agent_signing_key(self, node_token_hash: str) -> str:
        """The key that signs this server's calls to a node's agent. Derived from the node
        token's hash with the cluster secret, so the hash in a snapshot signs nothing."""
        return hmac.new(self._signing_key, node_token_hash.encode(), hashlib.sha256).hexdigest()

    def _tls_options(self) -> dict[str, Any]:
        import ssl

        cfg = self.config
        if not cfg.tls_cert:
            return {}
        options: dict[str, Any] = {"ssl_certfile": cfg.tls_cert, "ssl_keyfile": cfg.tls_key}
        if cfg.tls_ca:
            options["ssl_ca_certs"] = cfg.tls_ca
            options["ssl_cert_reqs"] = (ssl.CERT_REQUIRED if cfg.tls_verify_clients
                                        else ssl.CERT_OPTIONAL)
        return options

    def agent_tls(self, node: dict[str, Any]) -> tuple[Any, str] | None:
        """httpx options for calling a node's agent: with ``--tls-ca``, an agent endpoint
        served over HTTPS must present a certificate of that CA for its region's agent name,
        and this server presents its own certificate (agents may require it)."""
        cfg = self.config
        if not cfg.tls_ca or not str(node.get("http_address", "")).startswith("https://"):
            return None
        return (client_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key),
                agent_name(node.get("region") or ""))

    def _server_verify(self) -> Any:
        """How this server checks another server's HTTPS certificate: by the cluster CA. The
        address comes from the replicated state; a server's certificate names its region,
        which a peer does not know, so the chain is checked, not the name."""
        cfg = self.config
        if not cfg.tls_ca:
            return True
        context = client_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _leader_http(self) -> str | None:
        """The leader's API address, when another server leads."""
        hint = self.leader_hint()
        if hint is None or not hint.get("http") or hint.get("raft") == self.config.raft:
            return None
        return str(hint["http"])

    def leader_hint(self) -> dict[str, Any] | None:
        if self.raft is None:
            return None
        leader = self.raft.leader_addr()
        if leader is None:
            return None
        for server in list(self.machine.servers.values()):
            if server["raft"] == leader:
                return {"id": server["id"], "http": server["http"], "raft": leader}
        return {"id": None, "http": None, "raft": leader}

    def status(self) -> dict[str, Any]:
        raft = self.raft
        if raft is None:
            raise NoLeader("the server is starting")
        leader = raft.leader_addr()
        known = {s["raft"]: s for s in list(self.machine.servers.values())}
        try:
            raft_status = raft.status()
        except Exception:  # noqa: BLE001 - a debug dump; roles then stay as Raft last knew
            raft_status = {}
        servers = []
        for addr in [self.config.raft, *self.config.peers]:
            info = known.get(addr, {})
            role = "leader" if addr == leader else "follower"
            if addr == self.config.raft and addr != leader and leader is None:
                role = "candidate"
            if addr != self.config.raft and raft_status.get(
                    f"partner_node_status_server_{addr}") == 0:
                # Not connected to this server: do not call a dead peer a follower.
                role = "unreachable"
            servers.append({"id": info.get("id"), "raft": addr, "http": info.get("http"),
                            "role": role})
        leader_id = next((s["id"] for s in servers if s["raft"] == leader), None)
        return {"self": self.config.id, "leader": leader_id, "leader_raft": leader,
                "term": raft.term(), "commit_index": raft.commit_index(),
                "index": self.machine.index, "servers": servers}

    # -- watching for change -------------------------------------------------------------
    def _on_applied(self) -> None:
        """After each applied batch (on the Raft thread): wake the queries whose keys it
        changed, and the ones waiting for any change."""
        raft = self.raft
        touched = raft.machine.take_touched() if raft is not None else {WATCH_ALL}
        self._wake_waiters(touched)

    def _wake_waiters(self, keys: set[str] | None = None) -> None:
        with self._waiters_lock:
            if keys is None or WATCH_ALL in keys:
                woken = [e for entries in self._waiters.values() for e in entries]
                self._waiters = {}
            else:
                woken = list(self._waiters.pop(WATCH_ALL, ()))
                for key in keys:
                    woken.extend(self._waiters.pop(key, ()))
        self.wakeups += len(woken)
        for loop, future in woken:
            loop.call_soon_threadsafe(_resolve, future)
        with self.changed:
            self.changed.notify_all()

    async def wait_for_index(self, index: int, timeout: float) -> int:
        """Blocking query: return once the state index exceeds ``index`` or at the timeout,
        with the current index (callers compare and re-read)."""
        await self._wait(lambda: self.machine.index, (WATCH_ALL,), index, timeout)
        return self.machine.index

    async def wait_for_change(self, keys: tuple[str, ...], index: int, timeout: float) -> int:
        """Blocking query on watch keys (``StateMachine.watch_index_of``): return once one of
        ``keys`` changed after ``index``, or at the timeout, with the keys' index. Changes to
        other keys do not wake it."""
        await self._wait(lambda: self.machine.watch_index_of(*keys), keys, index, timeout)
        return self.machine.watch_index_of(*keys)

    async def _wait(self, current: Any, keys: tuple[str, ...], index: int,
                    timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waited = False
        while current() <= index and not self._stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            with self._waiters_lock:
                for key in keys:
                    self._waiters.setdefault(key, set()).add(entry)
            try:
                if current() > index:
                    break
                waited = True
                await asyncio.wait_for(future, remaining)
            except TimeoutError:
                pass
            finally:
                with self._waiters_lock:
                    for key in keys:
                        waiting = self._waiters.get(key)
                        if waiting is not None:
                            waiting.discard(entry)
                            if not waiting:
                                del self._waiters[key]
        if waited:
            # One change wakes every query on it at once: their answers take turns.
            await self.admission.readmit()

    # -- committing ----------------------------------------------------------------------
    def _unwrap(self, command: dict[str, Any], result: dict[str, Any], started: float) -> Any:
        self.metrics.commit_latency.observe(time.perf_counter() - started)
        self.metrics.commands.labels(command["type"], "ok" if result["ok"] else "rejected").inc()
        if not result["ok"]:
            raise error_from_body(result["status"], {"error": result["error"]})
        return result["value"]

    def _with_hint(self, exc: FederationError) -> FederationError:
        if isinstance(exc, NoLeader | CommitTimeout):
            exc.details["leader"] = self.leader_hint()
        return exc

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        """Commit from a plain thread (leader loops); returns the raw result."""
        if self.raft is None:
            raise NoLeader("the server is starting")
        return self.raft.commit(command)

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queue a command without waiting (leader loops that pipeline their commits)."""
        if self.raft is None:
            raise NoLeader("the server is starting")
        return self.raft.submit(command)

    async def commit(self, command: dict[str, Any]) -> Any:
        """Commit one command through Raft and return its value; raise its error."""
        raft = self.raft
        if raft is None:
            raise NoLeader("the server is starting")
        started = time.perf_counter()
        with self.tracer.start_as_current_span("raft.commit") as span:
            span.set_attribute("federation.command.type", command["type"])
            try:
                result = await self._commit_through_election(raft, command, started)
                # One batch commits many requests' commands: their replies take turns.
                await self.admission.readmit()
            except TimeoutError:
                exc = CommitTimeout(
                    "the command was not committed in time: its outcome is unknown; retrying "
                    "with the same Idempotency-Key is safe")
                span.set_attribute("federation.outcome", "timeout")
                raise self._with_hint(exc) from None
            except FederationError as exc:
                span.set_attribute("federation.outcome", exc.code)
                raise self._with_hint(exc) from None
            span.set_attribute("federation.raft.index", int(result["index"]))
            span.set_attribute("federation.raft.term", raft.term())
            span.set_attribute("federation.commit.latency_ms",
                               round((time.perf_counter() - started) * 1000, 3))
            span.set_attribute("federation.outcome", "ok" if result["ok"] else "rejected")
            return self._unwrap(command, result, started)

    async def _commit_through_election(self, raft: Any, command: dict[str, Any],
                                       started: float) -> dict[str, Any]:
        """Submit ``command``; while no leader is known (an election is under way) wait and
        submit again, within the commit timeout. Raft refused those attempts before sending
        them anywhere, so submitting again cannot apply the command twice."""
        timeout = raft.config.settings.commit_timeout
        while True:
            remaining = timeout - (time.perf_counter() - started)
            future = raft.submit(command)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), max(remaining, 0.05))
            except NoLeader:
                if self._stop.is_set() or timeout - (time.perf_counter() - started) < 0.2:
                    raise
                await asyncio.sleep(0.1)

    async def barrier(self) -> None:
        try:
            await self.commit({"type": "noop"})
        except FederationError as exc:
            raise self._with_hint(exc) from None

    def _caught_up(self, stop: threading.Event) -> bool:
        """Whether this new leader has applied everything committed before it led, having
        claimed its leadership: a ``leader.claim`` of its own term is applied (so is every
        entry before it), and from then on what its loops commit carries the claim."""
        if self.raft is None or not self.raft.is_leader():
            return False
        claim = f"{self.config.id}:{uuid.uuid4().hex}"
        try:
            result = self.commit_sync({"type": "leader.claim", "id": f"leader-claim:{claim}",
                                       "leader": claim})
        except FederationError as exc:
            log.info("leader loops wait for the log to be applied: %s", exc)
            return False
        if not result.get("ok"):
            log.warning("claiming leadership was refused: %s", result.get("error"))
            return False
        self.leader_claim = claim
        return True

    def barrier_sync(self) -> None:
        if self.raft is None:
            raise NoLeader("the server is starting")
        wait_result(self.raft.submit({"type": "noop"}), self.raft.config.settings.commit_timeout)
