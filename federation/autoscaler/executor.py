"""The autoscaler's executor: the leader loop that turns plans into provider calls.

Each tick: observe the committed state (pools, nodes, allocations, launch records, blocked
demand) → plan with the pure planner → for each decision commit ``launch.begin`` (or
``instance.terminate.begin``) through Raft → call the provider with the committed token →
commit the outcome. A node to release is drained first and terminated once nothing runs
there; one still running work after its drain (under the pool's utilisation threshold) gets
a ``drain`` note in the state, so whichever server leads terminates it once it is empty.
A launch still ``pending`` in the state (its leader died between the commit and the
outcome) is resumed with the same token: providers are idempotent per token, so it never
launches twice. Every provider call is an OpenTelemetry span, child of the span
of the decision that caused it. Dry run (a pool's ``settings.dry_run`` or
``FEDERATION_AUTOSCALER_DRY_RUN=1``) plans and records activities without acting.

The launch/terminate protocol itself (commit, call, commit the outcome, and the table of
allowed transitions) is :mod:`federation.autoscaler.lifecycle`; this module observes, plans
and decides what to ask of it.

Settings (:class:`ExecutorSettings`) and the clock are given by the composition root (the
master builds the settings from the environment when a server starts):

* ``FEDERATION_AUTOSCALER_INTERVAL``: seconds between ticks (default 2);
* ``FEDERATION_AUTOSCALER_RECONCILE``: seconds between reconciliations (default 15);
* ``FEDERATION_AUTOSCALER_DRY_RUN=1``: dry run for every pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import trace

from federation.autoscaler.decide import decide
from federation.autoscaler.lifecycle import Lifecycle
from federation.autoscaler.observe import (
    DRAIN_ACTION,
    busy_nodes,
    demand,
    drained_to_release,
    instance_id_of,
    last_finished_on,
    occupancy,
    pool_dry_run,
    pool_state,
    under_threshold,
)
from federation.autoscaler.planner import Plan, PoolState, ScaleDown, ScaleUp
from federation.autoscaler.reconciler import Drift, reconcile
from federation.errors import FederationError
from federation.ports import LeaderContext
from federation.providers.base import Bootstrap, InstanceType, Provider, load_provider
from federation.specs.pool import PoolSpec, parse_pool
from federation.state.machine import StateMachine

log = logging.getLogger("federation.autoscaler")


@dataclass(frozen=True)
class ExecutorSettings:
    interval: float = 2.0
    reconcile_every: float = 15.0
    catalog_ttl: float = 300.0
    capacity_cooldown: float = 60.0
    dry_run: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExecutorSettings:
        """Settings from a server's environment (read by the composition root)."""
        settings = cls()

        def seconds(key: str, default: float) -> float:
            try:
                return max(0.05, float(env[key])) if key in env else default
            except ValueError:
                log.warning("ignoring %s=%r: not a number of seconds", key, env[key])
                return default

        return replace(
            settings,
            interval=seconds("FEDERATION_AUTOSCALER_INTERVAL", settings.interval),
            reconcile_every=seconds("FEDERATION_AUTOSCALER_RECONCILE", settings.reconcile_every),
            dry_run=env.get("FEDERATION_AUTOSCALER_DRY_RUN", "") in ("1", "true", "yes"),
        )


@dataclass
class TickReport:
    """What one tick did (for tests and logs)."""

    plan: Plan | None = None
    launched: list[str] = field(default_factory=list)  # tokens
    resumed: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)


class IdleClock:
    """Since when each node has been idle, as far as this leader can tell.

    A node first seen idle is idle since the later of its registration and the last
    finish of an allocation on it; afterwards every busy observation resets the clock.
    The clock lives in the leader's memory: a new leader starts it again from the state,
    which can only delay a scale-down, never hasten it.
    """

    def __init__(self) -> None:
        self._since: dict[str, float | None] = {}

    def update(self, machine: StateMachine, now: float) -> dict[str, float | None]:
        busy = busy_nodes(machine)
        finished = last_finished_on(machine)
        seen: dict[str, float | None] = {}
        for node in list(machine.nodes.values()):
            node_id = node["id"]
            if node_id in busy:
                seen[node_id] = None
            elif node_id in self._since and self._since[node_id] is not None:
                seen[node_id] = self._since[node_id]
            elif node_id in self._since:  # was busy, now idle
                seen[node_id] = now
            else:
                registered = float(node.get("registered_at") or now)
                seen[node_id] = min(now, max(registered, finished.get(node_id, 0.0)))
        self._since = seen
        return dict(seen)


class UnderClock:
    """Since when each node has been under its pool's ``scale_down_utilization``, as seen
    by this leader: first seen under, a clock starts; any observation above resets it. A
    new leader starts again, which can only delay a scale-down."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def update(self, under: set[str], now: float) -> dict[str, float]:
        self._since = {node_id: self._since.get(node_id, now) for node_id in under}
        return dict(self._since)


class _TickSpan:
    """The ``autoscaler.tick`` span, started (back-dated to the tick's start) only when the
    tick first does something, and made current until the tick ends."""

    def __init__(self, tracer: trace.Tracer, stack: contextlib.ExitStack) -> None:
        self._tracer = tracer
        self._stack = stack
        self._started_ns = time.time_ns()
        self.opened = False

    def open(self) -> None:
        if self.opened:
            return
        self.opened = True
        span = self._tracer.start_span("autoscaler.tick", start_time=self._started_ns)
        self._stack.enter_context(trace.use_span(span, end_on_exit=True))


class Executor:
    """Runs on the leader only. ``tick()`` is one observe-plan-act round."""

    def machine(self) -> StateMachine:
        return self.context.machine

    def __init__(
        self,
        context: LeaderContext,
        *,
        tracer: trace.Tracer | None = None,
        settings: ExecutorSettings | None = None,
        providers: Mapping[str, Provider] | None = None,
        bootstrap: Callable[[StateMachine, PoolSpec], Bootstrap] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.context = context
        self._on_tick = on_tick  # told after every tick, failed ones too (a metric counts)
        self.tracer = tracer or trace.get_tracer("federation.autoscaler")
        self._tick: _TickSpan | None = None
        self.settings = settings or ExecutorSettings()
        self._providers: dict[str, Provider] = dict(providers or {})
        self._bootstrap = bootstrap or default_bootstrap(None)
        self.idle = IdleClock()
        self.under = UnderClock()
        self._catalogs: dict[tuple[str, int], tuple[float, tuple[InstanceType, ...]]] = {}
        self._cooldown: dict[tuple[str, str], float] = {}
        self._noted: dict[str, str] = {}  # subject -> last reason recorded
        self._first_seen: dict[str, dict[str, float]] = {}
        self._last_reconcile = -float("inf")
        self.lifecycle = Lifecycle(
            self._commit, self.provider, lambda spec: self._bootstrap(self.machine(), spec),
            self.tracer, self._cool)

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """One leadership term: memory of an earlier term (idle clocks, unknown instances)
        is dropped, since the state may have moved on while another server led."""
        self.idle = IdleClock()
        self.under = UnderClock()
        self._first_seen = {}
        self._last_reconcile = -float("inf")
        while not stop.is_set():
            try:
                self.tick()
            except FederationError as exc:
                log.warning("autoscaler tick failed: %s", exc)
            except Exception:  # noqa: BLE001 - not one pool's fault (those are set aside)
                log.exception("autoscaler tick failed")
            if self._on_tick is not None:
                self._on_tick()
            stop.wait(self.settings.interval)

    def tick(self) -> TickReport:
        """One pass. Its ``autoscaler.tick`` span is opened only once the tick does
        something (a provider call, a commit, a decision): an idle tick leaves no trace."""
        report = TickReport()
        now = self.context.now()
        with contextlib.ExitStack() as stack:
            self._tick = _TickSpan(self.tracer, stack)
            try:
                self._tick_body(report, now)
            finally:
                self._tick = None
        return report

    def _span(self, name: str) -> Any:
        """A span of this tick's work, the tick's own span opened first if it is not yet."""
        if self._tick is not None:
            self._tick.open()
        return self.tracer.start_as_current_span(name)

    def _tick_body(self, report: TickReport, now: float) -> None:
        self._resume(report)
        machine = self.machine()
        specs = self._specs(machine)
        idle = self.idle.update(machine, now)
        under = self.under.update(under_threshold(machine, specs.values()), now)
        states = []
        for spec in list(specs.values()):
            try:
                catalog = self._catalog(spec, now)
                if catalog is not None:
                    states.append(pool_state(machine, spec, catalog, idle))
            except Exception as exc:  # noqa: BLE001 - one pool's failure is its own
                self._set_aside(spec, "reading", exc)
                del specs[spec.name]
        wanted = demand(machine)
        decision = decide(wanted, states, now=now, occupancy=occupancy(machine, under))
        result = decision.plan
        report.plan = result
        for up in result.scale_up:
            try:
                self._scale_up(specs[up.pool], up, report)
            except FederationError:
                raise
            except Exception as exc:  # noqa: BLE001 - one pool's failure is its own
                self._set_aside(specs[up.pool], "scaling up", exc)
        for down in result.scale_down:
            try:
                self._scale_down(specs[down.pool], down, report)
            except FederationError:
                raise
            except Exception as exc:  # noqa: BLE001 - one pool's failure is its own
                self._set_aside(specs[down.pool], "scaling down", exc)
        for kept in decision.blocked:
            self._note(f"keep:{kept.node_id}", "keep", kept.pool, kept.reason, 0.0,
                       self._dry(specs[kept.pool]), report)
        # Without any pool there is nothing to buy: every pending task would be noted (one
        # Raft write each) for what its job's status already says.
        for item in result.unplaceable if specs else ():
            self._note(
                f"unplaceable:{item.task_id}",
                "unplaceable",
                "",
                f"{item.count} task(s) of {item.task_id}: {item.reason}",
                0.0,
                False,
                report,
            )
        if now - self._last_reconcile >= self.settings.reconcile_every:
            self._last_reconcile = now
            for spec in specs.values():
                try:
                    self._reconcile(spec, now, report)
                except FederationError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one pool's failure is its own
                    self._set_aside(spec, "reconciling", exc)

    def _set_aside(self, spec: PoolSpec, stage: str, exc: Exception) -> None:
        """A pool whose handling raised: note it in the activity log, log it, go on."""
        reason = f"{stage} pool {spec.name} failed: {type(exc).__name__}: {str(exc)[:500]}"
        log.warning("%s", reason, exc_info=exc)
        try:
            self._note(f"error:{spec.name}:{stage}", "pool_error", spec.name, reason, 0.0,
                       False, None)
        except Exception:  # noqa: BLE001 - the note is best effort; the loop goes on
            log.exception("could not record the failure of pool %s", spec.name)

    # -- observation helpers ---------------------------------------------------------------
    def _specs(self, machine: StateMachine) -> dict[str, PoolSpec]:
        out = {}
        for name, record in sorted(list(machine.pools.items())):
            try:
                out[name] = parse_pool(record["spec"])
            except FederationError as exc:  # stored before a validation rule tightened
                log.warning("pool %s is not valid any more: %s", name, exc)
        return out

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = load_provider(name)
        return self._providers[name]

    def _dry(self, spec: PoolSpec) -> bool:
        return self.settings.dry_run or pool_dry_run(spec)

    def _catalog(self, spec: PoolSpec, now: float) -> tuple[InstanceType, ...] | None:
        key = (spec.name, hash(spec.model_dump_json()))
        hit = self._catalogs.get(key)
        if hit is None or now - hit[0] > self.settings.catalog_ttl:
            try:
                with self._span("provider.catalog") as span:
                    span.set_attribute("federation.pool", spec.name)
                    span.set_attribute("federation.provider", spec.provider)
                    types = tuple(self.provider(spec.provider).catalog(spec))
            except FederationError as exc:
                self._note(
                    f"catalog:{spec.name}",
                    "catalog_error",
                    spec.name,
                    f"cannot read the catalog of pool {spec.name}: {exc}",
                    0.0,
                    False,
                    None,
                )
                return None
            hit = (now, types)
            self._catalogs = {k: v for k, v in self._catalogs.items() if k[0] != spec.name}
            self._catalogs[key] = hit
        cooling = {t for (p, t), until in self._cooldown.items() if p == spec.name and until > now}
        return tuple(t for t in hit[1] if t.name not in cooling)

    # -- committing ------------------------------------------------------------------------
    def _commit(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """Commit; the value, or None when the state machine rejected the command."""
        if self._tick is not None:
            self._tick.open()  # a commit is work: the tick's span holds its raft.commit
        result = self.context.commit_sync(command)
        if not result.get("ok"):
            log.warning("autoscaler command %s rejected: %s", command["type"], result.get("error"))
            return None
        return dict(result["value"])

    def _note(
        self,
        subject: str,
        action: str,
        pool: str,
        reason: str,
        cost: float,
        dry_run: bool,
        report: TickReport | None,
        *,
        detail: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        """Record a decision not acted upon, once per subject while its ``key`` (by default
        its reason) holds."""
        if self._noted.get(subject) == (key or reason):
            return
        token = f"note-{uuid.uuid4().hex}"
        value = self._commit(
            {
                "type": "autoscaler.record",
                "id": f"autoscaler.record:{token}",
                "note": {
                    "token": token,
                    "action": action,
                    "pool": pool,
                    "reason": reason,
                    "hourly_cost": round(cost, 6),
                    "dry_run": dry_run,
                    "detail": dict(detail or {}),
                },
            }
        )
        if value is not None:
            self._noted[subject] = key or reason
            if report is not None:
                report.recorded.append(token)

    # -- scale up --------------------------------------------------------------------------
    def _scale_up(self, spec: PoolSpec, up: ScaleUp, report: TickReport) -> None:
        with self._span("autoscaler.scale_up") as span:
            span.set_attribute("federation.pool", up.pool)
            span.set_attribute("federation.instance_type", up.instance_type)
            span.set_attribute("federation.count", up.count)
            span.set_attribute("federation.hourly_cost", up.hourly_cost)
            span.set_attribute("federation.reason", up.reason)
            if self._dry(spec):
                span.set_attribute("federation.dry_run", True)
                self._note(
                    f"up:{up.pool}:{up.instance_type}:{up.zones}",
                    "launch",
                    up.pool,
                    f"would launch {up.count} x {up.instance_type}: {up.reason}",
                    up.hourly_cost,
                    True,
                    report,
                )
                return
            token = uuid.uuid4().hex
            span.set_attribute("federation.token", token)
            tracked = self.lifecycle.begin_launch(
                token, up, format(span.get_span_context().trace_id, "032x"))
            if tracked is None:
                return  # not committed: the provider is never called for it
            log.info("launch %s committed: %d x %s in pool %s (%s)", token, up.count,
                     up.instance_type, up.pool, up.reason)
            self.lifecycle.launch(tracked, spec, up.instance_type, up.count)
            report.launched.append(token)

    def _cool(self, pool: str, instance_type: str) -> None:
        self._cooldown[(pool, instance_type)] = self.context.now() + self.settings.capacity_cooldown

    # -- resume ----------------------------------------------------------------------------
    def _resume(self, report: TickReport) -> None:
        """Finish launches and terminations a previous leader committed but did not close."""
        machine = self.machine()
        open_records = sorted(
            (r for r in list(machine.launches.values()) if r["status"] == "pending"),
            key=lambda r: r["create_index"],
        )
        for record in open_records:
            pool = machine.pools.get(record["pool"])
            if pool is None:
                spec = None
            else:
                try:
                    spec = parse_pool(pool["spec"])
                except FederationError:
                    spec = None
            with self._span("autoscaler.resume") as span:
                span.set_attribute("federation.token", record["token"])
                span.set_attribute("federation.kind", record["kind"])
                if record["kind"] == "launch":
                    tracked = Lifecycle.resumed_launch(record)
                    if spec is None:
                        self.lifecycle.abandon_launch(
                            tracked, f"pool {record['pool']} no longer exists")
                        continue
                    log.warning(
                        "resuming launch %s (%d x %s in pool %s) with its token",
                        record["token"], record["count"], record["instance_type"],
                        record["pool"])
                    self.lifecycle.launch(tracked, spec, record["instance_type"],
                                          record["count"])
                    report.resumed.append(record["token"])
                elif record["kind"] == "terminate" and spec is not None:
                    self.lifecycle.terminate(Lifecycle.resumed_terminate(record), spec,
                                             record["instance_ids"])
                    report.resumed.append(record["token"])

    # -- scale down ------------------------------------------------------------------------
    def _scale_down(self, spec: PoolSpec, down: ScaleDown, report: TickReport) -> None:
        """Drain the node; terminate it if nothing runs there, else record the drain so a
        later tick terminates it once its services have moved and its batch work ended."""
        with self._span("autoscaler.scale_down") as span:
            span.set_attribute("federation.pool", down.pool)
            span.set_attribute("federation.node", down.node_id)
            span.set_attribute("federation.reason", down.reason)
            node = self.machine().nodes.get(down.node_id)
            if node is None:
                return
            if self._dry(spec):
                span.set_attribute("federation.dry_run", True)
                self._note(
                    f"down:{down.node_id}",
                    "terminate",
                    down.pool,
                    f"would drain and terminate node {node['name']}: {down.reason}",
                    down.hourly_cost,
                    True,
                    report,
                    key="would drain and terminate",
                )
                return
            if not node.get("draining"):
                drained = self._commit(
                    {
                        "type": "node.drain",
                        "id": f"autoscaler-drain:{uuid.uuid4().hex}",
                        "node_id": down.node_id,
                        "draining": True,
                    }
                )
                if drained is None:
                    return
            machine = self.machine()
            if down.node_id in busy_nodes(machine):
                if down.node_id not in drained_to_release(machine):
                    log.info("draining node %s to release it: %s", node["name"], down.reason)
                    self._note(
                        f"drain:{down.node_id}",
                        DRAIN_ACTION,
                        down.pool,
                        f"draining node {node['name']} to release it, terminated once its "
                        f"services have moved and its batch work has finished: {down.reason}",
                        down.hourly_cost,
                        False,
                        report,
                        detail={"node_id": down.node_id, "instance_id": instance_id_of(node),
                                "why": down.reason},
                    )
                return
            self._terminate(
                spec,
                span,
                instance_id_of(node),
                [down.node_id],
                down.hourly_cost,
                f"node {node['name']}: {down.reason}",
                report,
            )

    def _terminate(
        self,
        spec: PoolSpec,
        span: trace.Span,
        instance_id: str,
        node_ids: list[str],
        hourly_cost: float,
        reason: str,
        report: TickReport,
    ) -> bool:
        """Commit ``instance.terminate.begin`` for one instance under a new token, then call
        the provider and record the token; False (and no call) when the commit was rejected
        or changed nothing. ``span`` is the decision's span, whose trace the record names."""
        token = uuid.uuid4().hex
        draining = any((self.machine().nodes.get(n) or {}).get("draining") for n in node_ids)
        tracked = self.lifecycle.begin_terminate(
            token, spec, instance_id, node_ids, hourly_cost, reason,
            format(span.get_span_context().trace_id, "032x"), draining)
        if tracked is None:
            return False
        self.lifecycle.terminate(tracked, spec, [instance_id])
        report.terminated.append(token)
        return True

    # -- reconcile -------------------------------------------------------------------------
    def _reconcile(self, spec: PoolSpec, now: float, report: TickReport) -> None:
        with self._span("autoscaler.reconcile") as span:
            span.set_attribute("federation.pool", spec.name)
            try:
                with self._span("provider.list_instances") as call:
                    call.set_attribute("federation.pool", spec.name)
                    call.set_attribute("federation.provider", spec.provider)
                    listed = self.provider(spec.provider).list_instances(spec)
                    call.set_attribute("federation.instances", len(listed))
            except FederationError as exc:
                self._note(
                    f"list:{spec.name}",
                    "list_error",
                    spec.name,
                    f"cannot list the instances of pool {spec.name}: {exc}",
                    0.0,
                    False,
                    report,
                )
                return
            first_seen = self._first_seen.setdefault(spec.name, {})
            drift = reconcile(self.machine(), spec, listed, now, first_seen)
            report.drift.extend(drift)
            dry = self._dry(spec)
            for item in drift:
                if not item.terminate or dry:
                    self._note(
                        f"drift:{item.instance_id}",
                        f"report_{item.kind}",
                        spec.name,
                        item.reason,
                        item.price_per_hour,
                        dry,
                        report,
                    )
                    continue
                if self._terminate(
                    spec, span, item.instance_id, [], item.price_per_hour, item.reason, report
                ):
                    first_seen.pop(item.instance_id, None)


def default_bootstrap(join_token: str | None) -> Callable[[StateMachine, PoolSpec], Bootstrap]:
    """Bootstrap for new machines: the servers' advertised HTTP addresses and the join
    secret (it may register a node and nothing else)."""
    join = join_token or "no-api-token"

    def build(machine: StateMachine, spec: PoolSpec) -> Bootstrap:
        servers = tuple(sorted(s["http"] for s in list(machine.servers.values())))
        return Bootstrap(
            servers=servers or ("http://127.0.0.1:4780",),
            join_token=join,
            cluster=str(spec.settings.get("cluster", "federation")),
        )

    return build


__all__ = [
    "Executor",
    "ExecutorSettings",
    "IdleClock",
    "PoolState",
    "TickReport",
    "UnderClock",
    "default_bootstrap",
]
