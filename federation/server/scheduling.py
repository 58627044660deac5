"""Leader loops that drive the scheduler: placement passes and cron dispatch.

Level-triggered: after every change to the replicated state (and at least once a second) the
leader takes a snapshot, asks the pure reconciler what each job needs, plans it with the pure
planner and commits it as ``plan.apply`` entries. Applying an entry is the single plan
applier: the state machine re-checks every node the plan touches against the latest state and
keeps only what still fits. A plan refused in whole (the job changed meanwhile) or in part is
re-planned on the next pass. What cannot be placed is committed with the reasons, so a
job's status explains it on every server and the autoscaler can read the blocked demand.

A pass fails per job, never for every job: a job whose reconciliation or planning raises (and
a periodic job whose schedule cannot be evaluated) is set aside with the error committed as
its blocked reason (``job status`` shows it) and a log line, and the pass goes on with the
others. It is looked at again when it changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from federation.errors import FederationError
from federation.ports import LeaderContext
from federation.raft.node import wait_result
from federation.scheduler import snapshot as snap
from federation.scheduler.periodic import due_launches_checked
from federation.scheduler.service import StatusOf, plan_pass

log = logging.getLogger("federation.scheduler")

PASS_INTERVAL = 1.0
MAX_PLANS_IN_FLIGHT = 16  # plan entries submitted and not yet applied, per pass
MAX_PASS_DELAY = 0.5  # seconds a pass may wait for more changes to gather
COMMIT_WAIT = 30.0  # seconds to wait for one plan entry before giving the pass up


def _job_order(job: dict[str, Any]) -> tuple[int, float, str]:
    return (-int(job["spec"].get("priority", 50)), job["submit_time"], job["id"])


class Scheduler:
    """One placement pass at a time, on the leader."""

    def __init__(self, context: LeaderContext) -> None:
        self.context = context
        self.passes = 0
        self.placed = 0
        self.considered = 0  # jobs the passes looked at, in all
        self._seen_index = -1  # state index the previous pass looked at
        self._retry: set[str] = set()  # jobs whose plan was refused: look again
        self._expired_seen: frozenset[str] = frozenset()  # drains already past deadline
        self._views = snap.ViewCache()  # node and allocation views reused across passes
        self.snapshot_seconds = 0.0  # how long the last pass's snapshot took
        self._aside: dict[str, tuple[int, str]] = {}  # jobs set aside, to log each once
        self._order_error = ""  # the last fair-share failure logged
        self._epoch = 0  # the state's alloc_epoch the previous pass saw (moves on restore)
        self._wake: dict[str, float] = {}  # job id -> when a delayed replacement falls due
        # Jobs the last pass that looked at them found settled: a copy of theirs coming up
        # (pending -> running, a health change) does not make them worth another look.
        self._settled: set[str] = set()
        # Allocation writes per job as the last completed pass saw them (an interrupted
        # pass keeps the older counts, so its changes are read again).
        self._writes: dict[str, int] = {}

    def run(self, stop: threading.Event) -> None:
        seen = -1
        unsure = False  # the last pass ended with plan entries of unknown outcome
        while not stop.is_set():
            machine = self.context.machine
            if machine.index == seen:
                with self.context.changed:
                    self.context.changed.wait(self._idle_wait(self.context.now()))
            stop.wait(self._gather_delay())
            try:
                if unsure:
                    # A plan entry whose wait failed may still be applied: planning again
                    # before it is (or is known dropped) would place its work twice. The
                    # log is ordered, so once this no-op is applied so is every entry
                    # submitted before it.
                    self.context.commit_sync({"type": "noop"})
                    unsure = False
                seen = self.context.machine.index
                self.dispatch_periodic()
                self.schedule_pass(stop)
            except FederationError as exc:  # no leader, a commit timed out: the cluster's
                log.warning("scheduling pass interrupted: %s", exc)
                unsure = True
                stop.wait(0.2)
            except Exception:  # noqa: BLE001 - not one job's fault (those are set aside)
                log.exception("scheduling pass failed; next pass in 1s")
                self._seen_index = -1  # look at every job again
                stop.wait(1.0)

    def _gather_delay(self) -> float:
        """A pass costs a snapshot however little changed: while changes keep coming (a
        burst of submissions), wait as long as the last snapshot took, so passes gather many
        jobs each and the API threads get the time to take them in. (Not waiting after a
        pass that planned longer than its snapshot took was measured: passes of about 16
        jobs back to back, each paying a snapshot over every node, 9,300 placements/s
        against 12,400/s with the wait.)"""
        return min(self.snapshot_seconds, MAX_PASS_DELAY)

    def _idle_wait(self, now: float) -> float:
        """How long a pass may wait for a change: at most until the next delayed
        replacement falls due."""
        if not self._wake:
            return PASS_INTERVAL
        return min(PASS_INTERVAL, max(0.01, min(self._wake.values()) - now))

    def _due_jobs(self, now: float) -> set[str]:
        """Jobs whose delayed replacements fell due (looked at again, forgotten here)."""
        due = {job_id for job_id, at in self._wake.items() if at <= now}
        for job_id in due:
            del self._wake[job_id]
        return due

    def _dirty_jobs(self, machine: Any) -> tuple[set[str], dict[str, int]]:
        """Jobs that may need work since the last pass: changed jobs, jobs whose allocations
        changed, jobs that depend on those, jobs running on a node that changed (joined,
        went down, drains, passed its drain deadline), and, when a node changed or an
        allocation ended (capacity or quota came back), every job with something unplaced.
        Heartbeats do not change a node record's modify_index, so they wake nothing.
        Also returns the allocation writes per job it went by, for the pass to keep once
        it completes."""
        since = self._seen_index
        jobs = dict(machine.jobs)
        if machine.alloc_epoch != self._epoch:
            # A restore (or a Raft snapshot loaded) replaced the state: records keep the
            # indexes they had, so only a full look finds what changed.
            self._epoch = machine.alloc_epoch
            since = -1
        if since < 0:
            self._settled.clear()
            return set(jobs), dict(machine.alloc_writes)
        self._settled.intersection_update(jobs)  # forget jobs that are gone
        dirty = {job_id for job_id, job in jobs.items() if job["modify_index"] > since}
        changed_nodes = {n["id"] for n in list(machine.nodes.values())
                         if n["modify_index"] > since}
        expired = snap.expired_drains(machine, self.context.now())
        changed_nodes |= expired - self._expired_seen  # a deadline passing is a change too
        self._expired_seen = expired
        freed = False  # an allocation that ended gives capacity and quota back
        settled = self._settled
        allocations = machine.allocations
        # Only the allocations of jobs written since the last pass (the state counts writes
        # per job) and those on changed nodes are read, not every allocation of the cluster.
        writes = dict(machine.alloc_writes)
        seen_writes = self._writes
        for job_id, count in writes.items():
            if seen_writes.get(job_id) == count:
                continue
            for alloc_id in list(machine.alloc_ids_by_job.get(job_id, ())):
                alloc = allocations.get(alloc_id)
                if alloc is None or alloc["modify_index"] <= since:
                    continue
                live = snap.is_live(alloc)
                # (A copy on a changed node wakes its job below whatever its job.)
                if live and job_id in settled and alloc.get("create_index", since + 1) <= since:
                    continue  # a settled job's copy coming up: nothing to decide
                dirty.add(job_id)
                freed = freed or not live
        for node_id in changed_nodes:
            for alloc_id in list(machine.alloc_ids_by_node.get(node_id, ())):
                alloc = allocations.get(alloc_id)
                if alloc is not None:
                    dirty.add(alloc["job_id"])
                    freed = freed or not snap.is_live(alloc)
        if changed_nodes or freed:
            dirty.update(job_id for job_id, job in jobs.items() if job.get("unplaced"))
        waiting = [job for job in jobs.values() if job["spec"].get("depends_on")]
        grew = True
        while grew:  # a change to a job may unblock the jobs that depend on it
            grew = False
            for job in waiting:
                if job["id"] not in dirty and dirty.intersection(job["spec"]["depends_on"]):
                    dirty.add(job["id"])
                    grew = True
        return dirty | self._retry | self._due_jobs(self.context.now()), writes

    def schedule_pass(self, stop: threading.Event | None = None) -> int:
        """Place what the jobs changed since the last pass need; returns how many
        allocations were committed. Once ``stop`` is set (leadership lost) no further plan
        is submitted; the pass returns when every plan it submitted has an outcome."""
        self.passes += 1
        machine = self.context.machine
        start_index = machine.index
        dirty, writes = self._dirty_jobs(machine)
        self._retry = set()
        self._settled -= dirty  # looked at again below: settled only if found so again
        jobs = sorted((j for j in (machine.jobs.get(i) for i in dirty)
                       if j is not None and not j["stopped"]), key=_job_order)
        if not jobs:  # heartbeats and other writes that leave every job as it was
            self._seen_index, self._writes = start_index, writes
            return 0
        self.considered += len(jobs)
        placed = 0
        started = time.perf_counter()
        snapshot = snap.take(machine, self.context.now(), self._views)
        snapshot_taken = time.perf_counter()
        self.snapshot_seconds = snapshot_taken - started
        # The pass is the scheduling service's (the plan preview runs the same one): every
        # job planned against the one snapshot plus what the pass already planned. Plans
        # are committed without waiting for each other (group commit puts many in one Raft
        # entry); applying a plan re-checks its nodes against the latest state, so a plan
        # that no longer fits loses only what does not.
        planned = 0
        in_flight: deque[tuple[str, int, Future[dict[str, Any]]]] = deque()
        try:
            for decision in plan_pass(machine, jobs, snapshot, seed=self.passes,
                                      status_of=StatusOf(machine),
                                      on_order_error=self._order_failed,
                                      on_wake=self._wake.__setitem__,
                                      on_settled=self._settled.add):
                job = decision.job
                if decision.failed is not None:
                    self._set_aside(job, *decision.failed)
                    continue
                if decision.blocked is not None:
                    self._block(job, decision.blocked)
                    continue
                plan = decision.plan
                if plan is None:
                    continue
                if stop is not None and stop.is_set():
                    break
                planned += 1
                try:
                    command = plan.command()
                except Exception as exc:  # noqa: BLE001 - one job's failure is its own
                    self._set_aside(job, "planning", exc)
                    continue
                if (not command["allocations"] and not command["stops"]
                        and not command["evictions"] and job.get("unplaced") == plan.unplaced
                        and job.get("exhausted", {}) == plan.exhausted):
                    continue
                gangs = frozenset(g["name"] for g in job["spec"]["groups"] if g.get("gang"))
                for entry in plan.commands(gangs):
                    in_flight.append((job["id"], len(entry["allocations"]),
                                      self.context.submit(entry)))
                    while len(in_flight) >= MAX_PLANS_IN_FLIGHT:
                        placed += self._settle(*in_flight.popleft())
        finally:
            # Every submitted plan is waited for, even after one failed: a pass that left
            # some unsettled would let the next one plan their work again.
            failure: FederationError | None = None
            while in_flight:
                try:
                    placed += self._settle(*in_flight.popleft())
                except FederationError as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure
        self.placed += placed
        if stop is not None and stop.is_set():
            # Cut short: the jobs of this pass are looked at again by the next one (in a
            # later term), those planned included (a refused plan adds nothing).
            self._retry |= dirty
            return placed
        self._seen_index, self._writes = start_index, writes
        log.debug("pass %d: %d job(s) planned, %d placed in %.3f s (snapshot %.3f s)",
                  self.passes, planned, placed, time.perf_counter() - started,
                  snapshot_taken - started)
        return placed

    def _settle(self, job_id: str, planned: int, future: Future[dict[str, Any]]) -> int:
        """Wait for one committed plan entry; returns how many allocations it placed."""
        try:
            result = wait_result(future, COMMIT_WAIT)
        except FederationError:
            self._retry.add(job_id)
            raise
        if not result["ok"]:
            self._retry.add(job_id)
            log.info("plan for %s refused (%s); re-planning next pass", job_id,
                     result["error"]["message"])
            return 0
        value = result["value"]
        if value["refused"]:
            self._retry.add(job_id)
            log.info("%d of %d placements for %s refused (nodes that no longer fit them: "
                     "%s; instances that already run: %d); re-planning them", value["refused"],
                     planned, job_id, value["refused_nodes"], value.get("duplicates", 0))
        return int(value["placed"])

    def _order_failed(self, reason: str, exc: Exception) -> None:
        """Fair-share ordering failed for the whole pass: say so once, not every pass."""
        if reason != self._order_error:
            self._order_error = reason
            log.error("%s; planning by priority, jobs of queues with a quota wait",
                      reason, exc_info=exc)

    def _set_aside(self, job: Mapping[str, Any], stage: str, exc: Exception) -> None:
        """A job whose scheduling raised: say why in its status, log it, and go on."""
        reason = f"{stage} failed: {type(exc).__name__}: {str(exc)[:500]}"
        if self._aside.get(job["id"]) != (job["version"], reason):  # once, not every pass
            self._aside[job["id"]] = (job["version"], reason)
            log.warning("job %s set aside: %s", job["id"], reason, exc_info=exc)
        blocked = {"*": {"explanation": reason, "unplaced": 0, "error": True}}
        if job.get("unplaced") != blocked:
            self.context.commit_sync({"type": "job.blocked", "job_id": job["id"],
                                     "unplaced": blocked})

    def _block(self, job: Mapping[str, Any], reason: str) -> None:
        """Record why a job is not planned at all (a dependency, a queue quota)."""
        blocked = {"*": {"explanation": reason, "unplaced": 0}}
        if job.get("unplaced") != blocked:
            self.context.commit_sync({"type": "job.blocked", "job_id": job["id"],
                                     "unplaced": blocked})

    def dispatch_periodic(self) -> int:
        machine = self.context.machine
        jobs = dict(machine.jobs)
        launches, failed = due_launches_checked(
            jobs, lambda job_id: machine.job_status(machine.jobs[job_id]), self.context.now())
        for job_id, reason in failed.items():
            self._set_aside(jobs[job_id], "schedule", ValueError(reason))
        for parent, fire, child in launches:
            self.context.commit_sync({
                "type": "job.register", "id": f"cron:{child['id']}", "spec": child,
                "parent": parent["id"], "launch_time": fire})
            log.info("periodic job %s launched %s", parent["id"], child["id"])
        return len(launches)

