"""The launch/terminate lifecycle of cloud instances: one transition table, and the protocol
that walks it (commit, then call the provider, then commit the outcome).

Every instance the autoscaler asks for moves through the states below; the table
:data:`TRANSITIONS` lists every allowed move, each edge with the event that causes it, and
:func:`advance` refuses any other. The rule the table encodes is the one the cluster's
correctness rests on: the provider is called for a launch (or a termination) only in
``LAUNCHING`` (``TERMINATING``), states reached only by a committed ``launch.begin``
(``instance.terminate.begin``). A leader that dies after the commit leaves the record
pending; the next leader finds it ``LAUNCHING`` and calls again with the same token, which
providers treat idempotently.

The states and the committed records::

    REQUESTED    a scale-up decided, nothing committed                 (leader memory)
    LAUNCHING    launch.begin committed, the provider may be called    launch "pending"
    RUNNING      launch.end named the instance                         instances[id] "running"
    FAILED       launch.end named no instance (error or shortfall)     launch "failed"
    DRAINING     its node drains to be released (a drain note)         node "draining"
    TERMINATING  instance.terminate.begin committed                    instances[id] "terminating"
    TERMINATED   instance.terminate.end without error                  instances[id] "terminated"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from opentelemetry import trace

from federation.autoscaler.planner import ScaleUp
from federation.errors import CapacityError, FederationError, QuotaError
from federation.providers.base import Bootstrap, Provider
from federation.specs.pool import PoolSpec

log = logging.getLogger("federation.autoscaler")


class Status(StrEnum):
    REQUESTED = "requested"
    LAUNCHING = "launching"
    RUNNING = "running"
    FAILED = "failed"
    DRAINING = "draining"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({
        Status.LAUNCHING,     # launch.begin committed (the token is now durable)
    }),
    Status.LAUNCHING: frozenset({
        Status.RUNNING,       # launch.end names the instance
        Status.FAILED,        # launch.end names none: a provider error, no capacity
        Status.LAUNCHING,     # a new leader resumes the pending launch with its token
    }),
    Status.RUNNING: frozenset({
        Status.DRAINING,      # chosen for release while work still runs there
        Status.TERMINATING,   # idle (or unknown to the state): instance.terminate.begin
    }),
    Status.DRAINING: frozenset({
        Status.RUNNING,       # the drain was lifted (operator undrain, demand came back)
        Status.TERMINATING,   # empty at last: instance.terminate.begin
    }),
    Status.TERMINATING: frozenset({
        Status.TERMINATED,    # instance.terminate.end without error
        Status.RUNNING,       # the provider refused: the instance still runs
        Status.TERMINATING,   # a new leader resumes the pending termination
    }),
    Status.FAILED: frozenset(),      # final: the demand is planned again from scratch
    Status.TERMINATED: frozenset(),  # final
}


class IllegalTransition(FederationError):
    """A lifecycle step the table does not allow (a bug, never an outside failure)."""

    code = "illegal_transition"
    http_status = 500


def allowed(current: Status, new: Status) -> bool:
    return new in TRANSITIONS[current]


def advance(current: Status, new: Status, subject: str = "") -> Status:
    """``new``, when the table allows moving there from ``current``; else refused."""
    if not allowed(current, new):
        raise IllegalTransition(
            f"{subject or 'instance'}: no transition from {current.value} to {new.value}")
    return new


def instance_status(launch: Mapping[str, Any], instance_id: str) -> Status:
    """The lifecycle state of one instance of a committed launch record."""
    if launch["status"] == "pending":
        return Status.LAUNCHING
    state = (launch.get("instances") or {}).get(instance_id)
    if state is None:
        return Status.FAILED
    return {"running": Status.RUNNING, "terminating": Status.TERMINATING,
            "terminated": Status.TERMINATED}[state]


@dataclass
class Tracked:
    """One launch or termination request as this leader walks it through the table."""

    token: str
    status: Status
    history: list[Status] = field(default_factory=list)

    def to(self, new: Status) -> None:
        self.status = advance(self.status, new, self.token)
        self.history.append(new)

    def require(self, status: Status, action: str) -> None:
        if self.status is not status:
            raise IllegalTransition(
                f"{self.token}: cannot {action} in state {self.status.value} "
                f"(only in {status.value})")


class Commit(Protocol):
    def __call__(self, command: dict[str, Any]) -> dict[str, Any] | None: ...


class Lifecycle:
    """Walks launches and terminations through :data:`TRANSITIONS`: commits each step
    through ``commit`` (None when the state machine rejected it) and calls the provider
    only in the states the table reserves for it."""

    def __init__(
        self,
        commit: Commit,
        provider: Callable[[str], Provider],
        bootstrap: Callable[[PoolSpec], Bootstrap],
        tracer: trace.Tracer,
        on_capacity_shortfall: Callable[[str, str], None],
    ) -> None:
        self._commit = commit
        self._provider = provider
        self._bootstrap = bootstrap
        self._tracer = tracer
        self._shortfall = on_capacity_shortfall

    # -- launch ------------------------------------------------------------------------
    def begin_launch(self, token: str, request: ScaleUp, decision: str) -> Tracked | None:
        """REQUESTED → LAUNCHING by committing ``launch.begin``; None when the commit was
        rejected or found the token already recorded (nothing to call then)."""
        tracked = Tracked(token, Status.REQUESTED)
        begun = self._commit({
            "type": "launch.begin",
            "id": f"launch.begin:{token}",
            "launch": {
                "token": token, "pool": request.pool, "provider": request.provider,
                "instance_type": request.instance_type, "count": request.count,
                "spot": request.spot, "zones": list(request.zones),
                "price_per_hour": request.price_per_hour,
                "hourly_cost": request.hourly_cost, "reason": request.reason,
                "decision": decision,
            },
        })
        if begun is None or not begun.get("changed"):
            return None
        tracked.to(Status.LAUNCHING)
        return tracked

    @staticmethod
    def resumed_launch(record: Mapping[str, Any]) -> Tracked:
        """A launch a previous leader committed and did not close: still LAUNCHING."""
        tracked = Tracked(record["token"], Status.LAUNCHING)
        tracked.to(Status.LAUNCHING)
        return tracked

    def launch(self, tracked: Tracked, spec: PoolSpec, instance_type: str, count: int) -> None:
        """Call the provider for a LAUNCHING request, then commit the outcome."""
        tracked.require(Status.LAUNCHING, "call the provider to launch")
        instances: list[str] = []
        failures: list[str] = []
        error: str | None = None
        with self._tracer.start_as_current_span("provider.launch") as span:
            span.set_attribute("federation.pool", spec.name)
            span.set_attribute("federation.provider", spec.provider)
            span.set_attribute("federation.instance_type", instance_type)
            span.set_attribute("federation.count", count)
            span.set_attribute("federation.token", tracked.token)
            try:
                result = self._provider(spec.provider).launch(
                    spec, instance_type, count, tracked.token, self._bootstrap(spec))
                instances = [i.id for i in result.instances]
                failures = list(result.failures)
                if result.shortfall:
                    self._shortfall(spec.name, instance_type)
            except FederationError as exc:
                error = f"{exc.code}: {exc.message}"
                span.set_attribute("federation.error", error)
                if isinstance(exc, CapacityError | QuotaError):
                    self._shortfall(spec.name, instance_type)
            span.set_attribute("federation.instances", len(instances))
        ended = self._commit({
            "type": "launch.end", "id": f"launch.end:{tracked.token}", "token": tracked.token,
            "instances": instances, "failures": failures, "error": error,
        })
        if ended is not None:
            tracked.to(Status.RUNNING if instances else Status.FAILED)
        log.info("launch %s: %d instance(s)%s", tracked.token, len(instances),
                 f", error {error}" if error else "")

    def abandon_launch(self, tracked: Tracked, why: str) -> None:
        """LAUNCHING → FAILED without a provider call (the pool went away meanwhile)."""
        if self._commit({"type": "launch.end", "id": f"launch.end:{tracked.token}",
                         "token": tracked.token, "instances": [], "error": why}) is not None:
            tracked.to(Status.FAILED)

    # -- terminate ---------------------------------------------------------------------
    def begin_terminate(self, token: str, spec: PoolSpec, instance_id: str,
                        node_ids: list[str], hourly_cost: float, reason: str,
                        decision: str, draining: bool) -> Tracked | None:
        """RUNNING (or DRAINING) → TERMINATING by committing ``instance.terminate.begin``;
        None when the commit was rejected or changed nothing."""
        tracked = Tracked(token, Status.DRAINING if draining else Status.RUNNING)
        begun = self._commit({
            "type": "instance.terminate.begin",
            "id": f"terminate.begin:{token}",
            "termination": {
                "token": token, "pool": spec.name, "provider": spec.provider,
                "instance_ids": [instance_id], "node_ids": node_ids,
                "hourly_cost": hourly_cost, "reason": reason, "decision": decision,
            },
        })
        if begun is None or not begun.get("changed"):
            return None
        tracked.to(Status.TERMINATING)
        return tracked

    @staticmethod
    def resumed_terminate(record: Mapping[str, Any]) -> Tracked:
        tracked = Tracked(record["token"], Status.TERMINATING)
        tracked.to(Status.TERMINATING)
        return tracked

    def terminate(self, tracked: Tracked, spec: PoolSpec, ids: list[str]) -> None:
        """Call the provider for a TERMINATING request, then commit the outcome."""
        tracked.require(Status.TERMINATING, "call the provider to terminate")
        error: str | None = None
        with self._tracer.start_as_current_span("provider.terminate") as span:
            span.set_attribute("federation.pool", spec.name)
            span.set_attribute("federation.provider", spec.provider)
            span.set_attribute("federation.instances", ",".join(ids))
            try:
                self._provider(spec.provider).terminate(spec, ids, tracked.token)
            except FederationError as exc:
                error = f"{exc.code}: {exc.message}"
                span.set_attribute("federation.error", error)
        ended = self._commit({"type": "instance.terminate.end",
                              "id": f"terminate.end:{tracked.token}",
                              "token": tracked.token, "error": error})
        if ended is not None:
            tracked.to(Status.RUNNING if error else Status.TERMINATED)
        log.info("terminate %s (%s)%s", tracked.token, ", ".join(ids),
                 f": error {error}" if error else "")
