"""The replicated state machine: every change to cluster state is a command applied here.

``StateMachine.apply(command)`` is deterministic: no I/O, no clock reads (time travels in the
command as ``time``), no randomness, so every master that applies the same log holds the same
state. A command is a plain, JSON-serialisable dict with an ``id`` and a ``type``; a command
whose id was already applied returns the recorded result again, so clients may retry safely.

``apply`` is total: it never raises. A command is either applied, or rejected with a
recorded result (``ok: false``, a 4xx status, the field at fault), and a rejected command
changes nothing, the state index included: handlers check the whole shape of a command
(``federation.state.checks``) before they write, and whatever a handler wrote before failing
in an unforeseen way is undone from the tables' journal (``federation.state.journal``).

Records in the tables are never modified in place: a change replaces the record with a new
dict. Readers on other threads may therefore hold and return a record without locking.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, cast

from federation.errors import Conflict, FederationError, NotFound, ValidationError
from federation.model.allocations import is_live
from federation.model.fit import KNOWN_CHECK_VERSIONS
from federation.model.jobstatus import live_status
from federation.model.usage import NodeUsage
from federation.specs.namespace import key_consistent
from federation.state import acl, capacity, checks, clusters, gc, namespaces, queues
from federation.state.journal import MISSING, Journal, Table
from federation.state.plan_check import duplicate_placements, fitting_placements, without

Command = dict[str, Any]
Result = dict[str, Any]

DEDUPE_WINDOW_SECONDS = 600.0
DEDUPE_MAX_ENTRIES = 200_000
# ``stopped``: the task was stopped on request (job stop, replacement, drain, lost node); it
# never counts as success, whatever its exit code.
ALLOC_CLIENT_STATUSES = ("pending", "running", "complete", "failed", "lost", "stopped")
ALLOC_DESIRED_STATUSES = ("run", "stop", "evict")
ENDED_CLIENT_STATUSES = ("complete", "failed", "lost", "stopped")
# What an agent may report about an allocation; placement fields are the scheduler's alone.
ALLOC_CLIENT_FIELDS = frozenset({
    "id", "client_status", "exit_code", "signal", "message", "ports", "restarts",
    "started_at", "finished_at", "healthy",
})
SNAPSHOT_VERSION = 1
# The watch key that stands for every key (a restore, a snapshot installed).
WATCH_ALL = "*"
JOB_HISTORY = checks.MAX_JOB_HISTORY  # earlier specs of a job kept (job history, revert)
WATCH_KEYS_SLACK = 10_000


TABLES = ("servers", "nodes", "node_ids_by_name", "jobs", "allocations", "alloc_ids_by_job",
          "pools", "launches", "queues", "acl_policies", "acl_tokens", "acl_token_by_hash",
          "namespaces", "clusters")


class StateMachine:
    """Cluster state: servers, nodes, jobs, allocations and a monotonic index."""

    def __init__(self) -> None:
        self.index = 0
        self.servers: dict[str, dict[str, Any]] = Table()
        self.nodes: dict[str, dict[str, Any]] = Table()
        self.node_ids_by_name: dict[str, str] = Table()
        self.jobs: dict[str, dict[str, Any]] = Table()
        self.allocations: dict[str, dict[str, Any]] = Table()
        self.alloc_ids_by_job: dict[str, set[str]] = Table()
        # The allocations placed on each node (derived: rebuilt from the allocations), so a
        # node's work list costs what that node holds, not what the cluster holds.
        self.alloc_ids_by_node: dict[str, set[str]] = {}
        self.node_usage = NodeUsage()
        # Allocation writes per job, and the index the counts restart from after a restore:
        # readers cache per-job views keyed by both (local bookkeeping, not in snapshots).
        self.alloc_writes: dict[str, int] = {}
        self.alloc_epoch = 0
        self.pools: dict[str, dict[str, Any]] = Table()
        self.launches: dict[str, dict[str, Any]] = Table()
        self.queues: dict[str, dict[str, Any]] = Table()
        self.namespaces: dict[str, dict[str, Any]] = Table()
        # Member Kubernetes clusters, their kubeconfig sealed: see federation.state.clusters.
        self.clusters: dict[str, dict[str, Any]] = Table()
        self.applied: OrderedDict[str, tuple[float, Result]] = OrderedDict()
        # The claim of the latest server to gain leadership (see ``leader.claim``).
        self.leader_claim: str | None = None
        # ACL policies and tokens (hashes of secrets only): see federation.state.acl.
        self.acl_policies: dict[str, dict[str, Any]] = Table()
        self.acl_tokens: dict[str, dict[str, Any]] = Table()
        self.acl_token_by_hash: dict[str, dict[str, Any]] = Table()
        self.acl_bootstrapped = False
        # The writes of the command being applied, undone if it fails (local, not pickled).
        self.journal = Journal()
        self._init_watches()
        self._attach()

    # -- watches -------------------------------------------------------------------------
    def _init_watches(self) -> None:
        """Local bookkeeping for blocking queries (not pickled): the index at which each
        watch key last changed, the keys changed since the last look, and the floor: the
        index this server's record starts from (keys unseen since then answer the floor)."""
        self.watch_index: dict[str, int] = {}
        self.watch_floor = self.index
        self.touched: set[str] = {WATCH_ALL}

    def watch_index_of(self, *keys: str) -> int:
        """The latest index at which any of ``keys`` changed (at least the floor)."""
        index = self.watch_floor
        for key in keys:
            index = max(index, self.watch_index.get(key, 0))
        return index

    def take_touched(self) -> set[str]:
        """The watch keys changed since the last call (``WATCH_ALL`` in it: every key)."""
        touched, self.touched = self.touched, set()
        return touched

    def _touch(self, entries: list[tuple[Any, Any, Any]]) -> None:
        """Record the watch keys a command's writes changed, at the current index."""
        from federation.state.journal import is_missing

        names = {id(getattr(self, name)): name for name in TABLES}
        keys: set[str] = set()
        allocations = self.allocations
        for table, key, previous in entries:
            name = names.get(id(table))
            if name is None:
                continue
            keys.add(name)
            if table is allocations:
                for record in (allocations.get(key), None if is_missing(previous) else previous):
                    if record is not None:
                        keys.add(f"node-allocs:{record['node_id']}")
                        keys.add(f"job-allocs:{record['job_id']}")
            elif name in ("nodes", "jobs"):
                keys.add(f"{name[:-1]}:{key}")
        index = self.index
        for key in keys:
            self.watch_index[key] = index
        self.touched |= keys
        if len(self.watch_index) > 4 * (len(self.jobs) + len(self.nodes)) + WATCH_KEYS_SLACK:
            # Keys of records long gone (collected jobs) pile up: start the record again
            # from here, which answers every waiting query once.
            self.watch_index = {}
            self.watch_floor = index
            self.touched.add(WATCH_ALL)

    def _attach(self) -> None:
        """Make every table a journaled :class:`Table` writing to this machine's journal."""
        for name in TABLES:
            table = getattr(self, name)
            if not isinstance(table, Table):
                table = Table(table)
                setattr(self, name, table)
            table.journal = self.journal

    # -- applying commands ---------------------------------------------------------------
    def apply(self, command: Command) -> Result:
        """Apply one command or reject it; never raises, and a rejection changes nothing."""
        if not isinstance(command, dict):
            return _rejection(self.index, ValidationError("a command must be a mapping"))
        command_id = command.get("id")
        if isinstance(command_id, str) and command_id in self.applied:
            return self.applied[command_id][1]
        kind = command.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        saved = dict(self.__dict__)
        self.journal.begin()
        try:
            if not isinstance(command_id, str) or not command_id or len(command_id) > 512:
                raise ValidationError("a command needs a string id", field="id")
            if handler is None:
                raise ValidationError(f"unknown command type {str(kind)[:100]!r}", field="type")
            checks.number(command.get("time", 0.0), "time")
            if "claim" in command:
                _check_claim(self, command["claim"])
            value = handler(self, command)
            result: Result = {"ok": True, "index": self.index, "value": value}
            entries = self.journal.end()
            if entries:
                self._touch(entries)
        except FederationError as exc:
            self._roll_back(saved)
            result = _rejection(self.index, exc)
        except Exception as exc:  # noqa: BLE001 - apply is total: nothing escapes into Raft
            # A command shape no check foresaw: reject it the same way on every server.
            self._roll_back(saved)
            result = _rejection(self.index, ValidationError(
                f"command rejected: {type(exc).__name__}: {str(exc)[:300]}"))
        if isinstance(command_id, str) and command_id and len(command_id) <= 512:
            self._remember(command_id, _time(command), result)
        return result

    def _roll_back(self, saved: dict[str, Any]) -> None:
        """Undo a failed command: attributes first (a restore swaps whole tables), then every
        journaled write to the tables still in use, newest first."""
        entries = self.journal.end()
        # Attribute by attribute, never clearing: readers on other threads never find one
        # missing.
        for name in [n for n in self.__dict__ if n not in saved]:
            del self.__dict__[name]
        self.__dict__.update(saved)
        current = {id(getattr(self, name)) for name in TABLES}
        allocations = self.allocations
        for table, key, previous in reversed(entries):
            if id(table) not in current:
                continue
            if table is allocations:
                self._unput_allocation(key, previous)
            table.restore(key, previous)

    def _unput_allocation(self, alloc_id: str, previous: Any) -> None:
        """Take back one allocation write in the per-job and per-node indexes."""
        from federation.state.journal import is_missing

        current = self.allocations.get(alloc_id)
        old = None if is_missing(previous) else previous
        self.node_usage.replace(current, old)
        if current is not None:
            self._unindex_node(current)
        if old is not None:
            self.alloc_ids_by_node.setdefault(old["node_id"], set()).add(alloc_id)
        if current is not None and (old is None or old["job_id"] != current["job_id"]):
            ids = self.alloc_ids_by_job.get(current["job_id"])
            if ids is not None:
                ids.discard(alloc_id)
                if not ids:
                    dict.pop(self.alloc_ids_by_job, current["job_id"], None)
        if old is not None:
            if old["job_id"] not in self.alloc_ids_by_job:
                dict.__setitem__(self.alloc_ids_by_job, old["job_id"], set())
            self.alloc_ids_by_job[old["job_id"]].add(alloc_id)

    def _remember(self, command_id: str, now: float, result: Result) -> None:
        self.applied[command_id] = (now, result)
        horizon = now - DEDUPE_WINDOW_SECONDS
        while self.applied:
            _, (oldest, _) = next(iter(self.applied.items()))
            if oldest >= horizon and len(self.applied) <= DEDUPE_MAX_ENTRIES:
                break
            self.applied.popitem(last=False)

    def _bump(self) -> int:
        self.index += 1
        return self.index

    # -- snapshot ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-serialisable data (for backups)."""
        return {
            "version": SNAPSHOT_VERSION,
            "index": self.index,
            "servers": list(self.servers.values()),
            "nodes": list(self.nodes.values()),
            "jobs": list(self.jobs.values()),
            "allocations": list(self.allocations.values()),
            "pools": list(self.pools.values()),
            "launches": list(self.launches.values()),
            "queues": list(self.queues.values()),
            **acl.snapshot(self),
            "namespaces": list(self.namespaces.values()),
            "clusters": list(self.clusters.values()),
        }

    @classmethod
    def from_snapshot(cls, data: Any) -> StateMachine:
        """A machine holding a snapshot's state; the snapshot is checked completely first
        (:func:`federation.state.checks.snapshot`) and refused with the field named."""
        checks.snapshot(data, SNAPSHOT_VERSION)
        machine = cls()
        machine.index = data["index"]
        machine.servers = Table({s["id"]: dict(s) for s in data["servers"]})
        machine.nodes = Table({n["id"]: dict(n) for n in data["nodes"]})
        machine.jobs = Table({j["id"]: dict(j) for j in data["jobs"]})
        machine.allocations = Table({a["id"]: dict(a) for a in data["allocations"]})
        machine.pools = Table({p["name"]: dict(p) for p in data.get("pools", [])})
        machine.launches = Table({la["token"]: dict(la) for la in data.get("launches", [])})
        machine.queues = Table({q["name"]: dict(q) for q in data.get("queues", [])})
        acl.load(machine, data)
        machine.namespaces = Table({n["name"]: dict(n) for n in data.get("namespaces", [])})
        machine.clusters = Table({c["name"]: dict(c) for c in data.get("clusters", [])})
        machine.node_ids_by_name = Table(
            {n["name"]: n["id"] for n in machine.nodes.values()})
        by_job: dict[str, set[str]] = {}
        for alloc in machine.allocations.values():
            by_job.setdefault(alloc["job_id"], set()).add(alloc["id"])
        machine.alloc_ids_by_job = Table(by_job)
        machine.alloc_ids_by_node = index_by_node(machine.allocations)
        machine.node_usage = NodeUsage.of(machine.allocations)
        machine.recount_alloc_writes()
        machine._init_watches()
        machine._attach()
        return machine

    def recount_alloc_writes(self) -> None:
        self.alloc_writes = {job_id: len(ids) for job_id, ids in self.alloc_ids_by_job.items()}
        self.alloc_epoch = self.index

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("journal", None)  # local: what the command being applied wrote
        for name in ("watch_index", "watch_floor", "touched"):  # local: blocking queries
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Raft snapshots and journals pickle the machine; ones written before the per-node
        # usage existed are given it on load, and plain dict tables become journaled ones.
        self.__dict__.update(state)
        if "node_usage" not in state:
            self.node_usage = NodeUsage.of(self.allocations)
        if "alloc_writes" not in state:
            self.recount_alloc_writes()
        if "acl_tokens" not in state:
            acl.init(self)
        if "namespaces" not in state:
            self.namespaces = Table()
        if "alloc_ids_by_node" not in state:
            self.alloc_ids_by_node = index_by_node(self.allocations)
        if "clusters" not in state:
            self.clusters = Table()
        self.journal = Journal()
        self._init_watches()
        self._attach()

    def put_allocation(self, record: dict[str, Any]) -> None:
        """Write an allocation record, keeping the per-job and per-node indexes current."""
        allocations, alloc_id = self.allocations, record["id"]
        previous = allocations.get(alloc_id)
        self.node_usage.replace(previous, record)
        # The hot path of plan.apply: the journal entry written here, then the plain dict
        # write (what Table.__setitem__ does, without a second lookup).
        journal = self.journal
        if journal.active and isinstance(allocations, Table):
            journal.entries.append((allocations, alloc_id,
                                    previous if previous is not None else MISSING))
        dict.__setitem__(allocations, alloc_id, record)
        if previous is not None and previous["node_id"] != record["node_id"]:
            self._unindex_node(previous)
        by_node = self.alloc_ids_by_node.get(record["node_id"])
        if by_node is None:
            by_node = self.alloc_ids_by_node[record["node_id"]] = set()
        by_node.add(alloc_id)
        ids = self.alloc_ids_by_job.get(record["job_id"])
        if ids is None:
            ids = self.alloc_ids_by_job[record["job_id"]] = set()
        ids.add(record["id"])
        self.alloc_writes[record["job_id"]] = self.alloc_writes.get(record["job_id"], 0) + 1

    def put_new_allocations(self, job_id: str, records: list[dict[str, Any]]) -> None:
        """Write allocations of ``job_id`` that do not exist yet (the plan applier's bulk
        path): what :meth:`put_allocation` does for each, with the per-node CPU and memory
        summed once per node."""
        if not records:
            return
        allocations, journal, usage = self.allocations, self.journal, self.node_usage
        entries = journal.entries if journal.active and isinstance(allocations, Table) else None
        cpu: dict[str, int] = {}
        memory: dict[str, int] = {}
        for record in records:
            alloc_id = record["id"]
            if entries is not None:
                entries.append((cast(Table, allocations), alloc_id, MISSING))
            dict.__setitem__(allocations, alloc_id, record)
            if not is_live(record):
                continue
            res = record.get("resources") or {}
            if res.get("gpu_devices"):
                usage.replace(None, record)
                continue
            node_id = record["node_id"]
            cpu[node_id] = cpu.get(node_id, 0) + int(res.get("cpu_milli", 0) or 0)
            memory[node_id] = memory.get(node_id, 0) + int(res.get("memory_mib", 0) or 0)
        for node_id, amount in cpu.items():
            usage.add_totals(node_id, amount, memory[node_id])
        by_node_index = self.alloc_ids_by_node
        for record in records:
            by_node = by_node_index.get(record["node_id"])
            if by_node is None:
                by_node = by_node_index[record["node_id"]] = set()
            by_node.add(record["id"])
        ids = self.alloc_ids_by_job.get(job_id)
        if ids is None:
            ids = self.alloc_ids_by_job[job_id] = set()
        ids.update(record["id"] for record in records)
        self.alloc_writes[job_id] = self.alloc_writes.get(job_id, 0) + len(records)

    def _unindex_node(self, record: dict[str, Any]) -> None:
        """Take an allocation out of its node's index (it moved, or is gone)."""
        ids = self.alloc_ids_by_node.get(record["node_id"])
        if ids is not None:
            ids.discard(record["id"])
            if not ids:
                del self.alloc_ids_by_node[record["node_id"]]

    def remove_allocation(self, alloc_id: str) -> None:
        """Delete an allocation record, keeping the per-job and per-node indexes current."""
        alloc = self.allocations[alloc_id]
        self.node_usage.replace(alloc, None)
        ids = self.alloc_ids_by_job.get(alloc["job_id"])
        if ids is not None:
            ids.discard(alloc_id)
            if not ids:
                del self.alloc_ids_by_job[alloc["job_id"]]
        self._unindex_node(alloc)
        del self.allocations[alloc_id]

    def stop_job(self, job_id: str, index: int, now: float) -> None:
        """Mark a job stopped at ``index`` and tell its running allocations to stop."""
        job = self.jobs[job_id]
        self.jobs[job_id] = {**job, "stopped": True, "version": job["version"] + 1,
                             "stopped_at": now, "modify_index": index}
        for alloc_id in list(self.alloc_ids_by_job.get(job_id, ())):
            alloc = self.allocations[alloc_id]
            if alloc["desired_status"] == "run":
                self.put_allocation({**alloc, "desired_status": "stop", "modify_index": index})

    # -- derived views -------------------------------------------------------------------
    def allocation_counts(self, job_id: str) -> dict[str, int]:
        counts = dict.fromkeys(ALLOC_CLIENT_STATUSES, 0)
        for alloc_id in list(self.alloc_ids_by_job.get(job_id, ())):
            alloc = self.allocations.get(alloc_id)
            if alloc is not None:
                counts[alloc["client_status"]] += 1
        return counts

    def batch_succeeded(self, job: dict[str, Any]) -> bool:
        """True when every instance the job still wants (each group's indexes below its
        count) has an allocation that is still meant to run and completed. A copy told to
        stop (replaced after its node was lost, drained, stopped) never counts, even if it
        reported ``complete``: its replacement has to succeed."""
        wanted = {(g["name"], i) for g in job["spec"]["groups"] for i in range(int(g["count"]))}
        for alloc_id in list(self.alloc_ids_by_job.get(job["id"], ())):
            alloc = self.allocations.get(alloc_id)
            if (alloc is not None and alloc["client_status"] == "complete"
                    and alloc["desired_status"] == "run"):
                wanted.discard((alloc.get("group"), alloc.get("index", 0)))
        return not wanted

    def job_status(self, job: dict[str, Any]) -> str:
        """pending | running | degraded | complete | failed | dead, derived from the
        allocations (``federation.model.jobstatus`` says when a live job is which)."""
        if job["stopped"]:
            return "dead"
        wanted = sum(g["count"] for g in job["spec"]["groups"])
        batch = job["spec"]["type"] == "batch"
        if batch and job.get("exhausted"):
            return "failed"
        if batch and wanted and self.batch_succeeded(job):
            return "complete"
        allocations = [a for a in (self.allocations.get(i) for i in
                                   list(self.alloc_ids_by_job.get(job["id"], ())))
                       if a is not None]
        return live_status(job["spec"]["groups"], allocations, batch)


def index_by_node(allocations: Mapping[str, dict[str, Any]]) -> dict[str, set[str]]:
    by_node: dict[str, set[str]] = {}
    for alloc in allocations.values():
        by_node.setdefault(alloc["node_id"], set()).add(alloc["id"])
    return by_node


def _time(command: Command) -> float:
    value = command.get("time", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    try:
        number = float(value)
    except OverflowError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _rejection(index: int, exc: FederationError) -> Result:
    return {"ok": False, "index": index, "status": exc.http_status, "error": {**exc.to_dict()}}


def _require(command: Command, key: str, kind: type | tuple[type, ...]) -> Any:
    value = command.get(key)
    if not isinstance(value, kind):
        raise ValidationError(f"command field {key!r} is missing or malformed", field=key)
    return value


# -- handlers: validate first, then change state (a failed command changes nothing) -------
def _noop(sm: StateMachine, command: Command) -> dict[str, Any]:
    return {"index": sm.index}


def _leader_claim(sm: StateMachine, command: Command) -> dict[str, Any]:
    """A server that gained leadership claims it, before its leader loops act: from here on,
    a command carrying an older claim (decided by a leader since replaced, and forwarded
    by it to this one once it found itself a follower) is refused."""
    claim = checks.text(command.get("leader"), "leader")
    sm.leader_claim = claim
    return {"leader": claim}


def _check_claim(sm: StateMachine, claim: Any) -> None:
    current = getattr(sm, "leader_claim", None)  # absent from states made before claims
    if current is not None and claim != current:
        raise Conflict("decided by a leader that has since been replaced", field="claim")


def _server_upsert(sm: StateMachine, command: Command) -> dict[str, Any]:
    server = _require(command, "server", dict)
    for key in ("id", "raft", "http"):
        checks.text(server.get(key), f"server.{key}", limit=checks.MAX_TEXT)
    record = {"id": server["id"], "raft": server["raft"], "http": server["http"]}
    if sm.servers.get(record["id"]) != record:
        record["modify_index"] = sm._bump()
        sm.servers[record["id"]] = record
    return {"id": record["id"]}


NODE_FIELDS = ("provider", "pool", "region", "zone", "rack", "instance_type", "instance_id",
               "address", "token_hash", "registration_id", "agent_version", "cluster")


def _node_register(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _require(command, "node", dict)
    for key in ("id", "name", "token_hash"):
        checks.text(node.get(key), f"node.{key}")
    checks.mapping(node, "node")
    checks.capacity(node.get("capacity", {}), "node.capacity")
    if node.get("labels") is not None:
        for key, value in checks.mapping(node["labels"], "node.labels").items():
            checks.text(value, f"node.labels.{key}", limit=checks.MAX_TEXT, empty=True)
    for key in NODE_FIELDS:
        checks.optional_text(node.get(key), f"node.{key}")
    if node.get("price_per_hour") is not None:
        checks.number(node["price_per_hour"], "node.price_per_hour")
    # status, draining, heartbeat and indexes are the cluster's: the record below sets them
    # whatever the registration says.
    if node.get("drain_deadline") is not None:
        checks.number(node["drain_deadline"], "node.drain_deadline")
    now = _time(command)
    existing_id = sm.node_ids_by_name.get(node["name"])
    existing = sm.nodes.get(existing_id) if existing_id else None
    if existing is None and node["id"] in sm.nodes:
        raise Conflict(f"node id {node['id']!r} belongs to another node", field="node.id")
    index = sm._bump()
    record = {
        **node,
        "id": existing["id"] if existing else node["id"],
        "status": "ready",
        "draining": existing["draining"] if existing else False,
        "last_heartbeat": now,
        "registered_at": existing["registered_at"] if existing else now,
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    sm.nodes[record["id"]] = record
    sm.node_ids_by_name[record["name"]] = record["id"]
    return {"id": record["id"], "reregistered": existing is not None}


def _node(sm: StateMachine, command: Command) -> dict[str, Any]:
    node_id = _require(command, "node_id", str)
    node = sm.nodes.get(node_id)
    if node is None:
        raise NotFound(f"no node {node_id[:checks.MAX_ID]!r}", field="node_id")
    return node


def _node_heartbeat(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _node(sm, command)
    index = sm._bump()
    updated = {**node, "status": "ready", "last_heartbeat": _time(command)}
    if node["status"] != "ready":
        # Only a change of status is a change of the node for the scheduler; a routine
        # heartbeat keeps modify_index so it wakes no scheduling work.
        updated["modify_index"] = index
    sm.nodes[node["id"]] = updated
    return {"id": node["id"], "status": "ready"}


def _node_drain(sm: StateMachine, command: Command) -> dict[str, Any]:
    node = _node(sm, command)
    draining = command.get("draining", True)
    if not isinstance(draining, bool):
        raise ValidationError("draining must be true or false", field="draining")
    deadline = command.get("deadline") if draining else None
    if deadline is not None:
        deadline = checks.number(deadline, "deadline")
    if node["draining"] != draining or node.get("drain_deadline") != deadline:
        sm.nodes[node["id"]] = {**node, "draining": draining, "drain_deadline": deadline,
                                "modify_index": sm._bump()}
    return {"id": node["id"], "draining": draining, "deadline": deadline}


def _node_mark_down(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Mark a node down, unless a heartbeat landed after the leader decided it was silent."""
    node = _node(sm, command)
    seen = checks.number(command.get("last_heartbeat_seen"), "last_heartbeat_seen")
    if node["status"] == "down" or node["last_heartbeat"] > seen:
        return {"id": node["id"], "status": node["status"], "changed": False}
    index = sm._bump()
    sm.nodes[node["id"]] = {**node, "status": "down", "modify_index": index}
    lost = 0
    for alloc_id in sorted(sm.alloc_ids_by_node.get(node["id"], ())):
        alloc = sm.allocations[alloc_id]
        if alloc["client_status"] in ("pending", "running"):
            # Lost, and told to stop: if the node comes back it must not run a second copy.
            sm.put_allocation({**alloc, "client_status": "lost",
                               "desired_status": "stop", "modify_index": index})
            lost += 1
    return {"id": node["id"], "status": "down", "changed": True, "lost": lost}


def _depends_on_cycle(sm: StateMachine, job_id: str, depends_on: list[str]) -> bool:
    stack, seen = list(depends_on), set()
    while stack:
        current = stack.pop()
        if current == job_id:
            return True
        if current in seen:
            continue
        seen.add(current)
        parent = sm.jobs.get(current)
        if parent is not None:
            stack.extend(parent["spec"].get("depends_on") or [])
    return False


def _job_register(sm: StateMachine, command: Command) -> dict[str, Any]:
    spec = checks.job_spec(command.get("spec"), "spec")
    job_id = spec["id"]
    depends_on = spec.get("depends_on") or []
    for i, parent_id in enumerate(depends_on):
        if parent_id not in sm.jobs:
            raise ValidationError(f"no job {parent_id!r} to depend on", field=f"depends_on[{i}]")
    if _depends_on_cycle(sm, job_id, depends_on):
        raise ValidationError("dependencies would form a cycle", field="depends_on")
    parent = command.get("parent")
    if parent is not None and (not isinstance(parent, str) or parent not in sm.jobs):
        raise ValidationError(f"no periodic job {str(parent)[:checks.MAX_ID]!r}",
                              field="parent")
    launch_time = checks.optional_number(command.get("launch_time"), "launch_time")
    if not key_consistent(spec):
        raise ValidationError("the job key does not match its namespace", field="namespace")
    # A job made from a Kubernetes object keeps that object (its metadata, the last-applied
    # configuration kubectl compares against); it is never read by the scheduler.
    manifest = command.get("manifest")
    if manifest is not None:
        manifest = dict(checks.mapping(manifest, "manifest"))
    # A suspended job (a CronJob with suspend: true) is registered stopped: nothing runs,
    # and it stays visible as suspended rather than deleted.
    suspend = checks.boolean(command.get("suspend", False), "suspend")
    existing = sm.jobs.get(job_id)
    if (existing is not None and existing["spec"] == spec
            and existing["stopped"] == suspend and existing.get("suspended", False) == suspend
            and existing.get("manifest") == manifest):
        return {"id": job_id, "version": existing["version"], "changed": False,
                "index": sm.index}
    index = sm._bump()
    record = {
        "id": job_id,
        "spec": spec,
        "version": existing["version"] + 1 if existing else 1,
        "stopped": False,
        "parent": parent if parent is not None else (existing or {}).get("parent"),
        "launch_time": launch_time,
        "unplaced": {},
        "exhausted": {},
        "submit_time": _time(command),
        "create_index": existing["create_index"] if existing else index,
        "modify_index": index,
    }
    if manifest is not None:
        record["manifest"] = manifest
    if suspend:
        record["stopped"] = record["suspended"] = True
    if existing is not None:
        record["history"] = _pushed_history(existing)
    sm.jobs[job_id] = record
    if existing is not None and not existing["stopped"] and not suspend and _in_place(
            existing["spec"], spec):
        # Only counts (or the update policy, or the kept manifest) changed: the running
        # copies are already what the new version runs, so they become its copies instead
        # of being replaced one by one (kubectl scale must not restart every pod).
        for alloc_id in sorted(sm.alloc_ids_by_job.get(job_id, ())):
            alloc = sm.allocations[alloc_id]
            if alloc.get("job_version") == existing["version"] and \
                    alloc["desired_status"] == "run":
                sm.put_allocation({**alloc, "job_version": record["version"],
                                   "modify_index": index})
    return {"id": job_id, "version": record["version"], "changed": True, "index": index}


def _pushed_history(existing: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The job's earlier versions with ``existing`` (the version being replaced) added, the
    newest last, at most ``JOB_HISTORY`` of them."""
    entry = {"version": existing["version"], "spec": existing["spec"],
             "submit_time": existing["submit_time"], "stopped": existing["stopped"]}
    return [*list(existing.get("history") or []), entry][-JOB_HISTORY:]


def job_versions(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every version of the job still kept, the current one first."""
    current = {"version": job["version"], "spec": job["spec"],
               "submit_time": job["submit_time"], "stopped": job["stopped"]}
    return [current, *reversed(list(job.get("history") or []))]


def _job_revert(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Submit a kept earlier version's spec again, as a new version."""
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id[:checks.MAX_ID]!r}", field="job_id")
    version = checks.integer(command.get("version"), "version", low=1)
    kept = {entry["version"]: entry for entry in job_versions(job)
            if isinstance(entry, Mapping) and isinstance(entry.get("version"), int)}
    if version not in kept:
        known = ", ".join(str(v) for v in sorted(kept))
        raise NotFound(f"job {job_id[:checks.MAX_ID]!r} has no version {version} "
                       f"(kept: {known})", field="version")
    register = {"id": command["id"], "type": "job.register", "time": command.get("time", 0.0),
                "spec": kept[version]["spec"]}
    if job.get("manifest") is not None:
        register["manifest"] = job["manifest"]
    value = _job_register(sm, register)
    return {**value, "reverted_to": version}


def _in_place(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two versions of a spec differ only in group counts and the update policy."""
    def shape(spec: Mapping[str, Any]) -> dict[str, Any]:
        groups = spec.get("groups") or []
        return {**spec, "update": None,
                "groups": [{**g, "count": None} if isinstance(g, Mapping) else g
                           for g in groups]}
    return shape(old) == shape(new)


def _job_deregister(sm: StateMachine, command: Command) -> dict[str, Any]:
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id[:checks.MAX_ID]!r}", field="job_id")
    if job["stopped"] and not job.get("suspended"):
        return {"id": job_id, "version": job["version"], "changed": False, "index": sm.index}
    index = sm._bump()
    if job["stopped"]:  # a suspended job: deleting it leaves it stopped, no longer suspended
        sm.jobs[job_id] = {**job, "suspended": False, "modify_index": index}
        return {"id": job_id, "version": job["version"], "changed": True, "index": index}
    sm.stop_job(job_id, index, _time(command))
    return {"id": job_id, "version": job["version"] + 1, "changed": True, "index": index}


MAX_STOP_IDS = 10_000  # allocations one alloc.stop may name


def _alloc_stop(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Tell allocations to stop (an operator's stop, a Kubernetes pod delete): desired status
    ``stop`` with the reason given, for every named allocation still meant to run. All or
    nothing: an id that names no allocation rejects the lot. Placing is the scheduler's
    (``plan.apply``); a job that still wants the copy gets a replacement on the next pass."""
    ids = checks.strings(command.get("alloc_ids"), "alloc_ids", limit=MAX_STOP_IDS)
    if not ids:
        raise checks.fail("alloc_ids", "names no allocation")
    reason = checks.optional_text(command.get("reason"), "reason")
    for i, alloc_id in enumerate(ids):
        if alloc_id not in sm.allocations:
            raise NotFound(f"no allocation {alloc_id[:checks.MAX_ID]!r}",
                           field=f"alloc_ids[{i}]")
    running = [a for a in dict.fromkeys(ids) if sm.allocations[a]["desired_status"] == "run"]
    if not running:
        return {"stopped": [], "index": sm.index}
    index = sm._bump()
    for alloc_id in running:
        alloc = sm.allocations[alloc_id]
        record = {**alloc, "desired_status": "stop", "modify_index": index}
        if reason:
            record["desired_description"] = reason
        sm.put_allocation(record)
    return {"stopped": running, "index": index}


def _check_update(update: dict[str, Any], where: str) -> None:
    """The typed fields an agent reports about an allocation."""
    for key in ("exit_code", "restarts"):
        if update.get(key) is not None:
            checks.integer(update[key], f"{where}.{key}", low=-(1 << 31), high=1 << 31)
    for key in ("started_at", "finished_at"):
        checks.optional_number(update.get(key), f"{where}.{key}")
    signal = update.get("signal")
    if signal is not None and not isinstance(signal, str):
        checks.integer(signal, f"{where}.signal", high=255)
    elif signal is not None:
        checks.text(signal, f"{where}.signal", limit=64)
    if update.get("message") is not None and not isinstance(update["message"], str):
        raise checks.fail(f"{where}.message", "must be a string")
    if update.get("healthy") is not None:
        checks.boolean(update["healthy"], f"{where}.healthy")
    if update.get("ports") is not None:
        ports = checks.mapping(update["ports"], f"{where}.ports")
        if len(ports) > 64:
            raise checks.fail(f"{where}.ports", "has more than 64 entries")
        for name, port in ports.items():
            checks.text(name, f"{where}.ports", limit=64)
            checks.integer(port, f"{where}.ports.{name}", high=65535)


def _alloc_update_status(sm: StateMachine, command: Command) -> dict[str, Any]:
    updates = checks.sequence(command.get("updates"), "updates")
    node_id = command.get("node_id")
    if node_id is not None:
        checks.text(node_id, "node_id")
    for i, update in enumerate(updates):
        if not isinstance(update, dict) or not isinstance(update.get("id"), str) \
                or update["id"] not in sm.allocations:
            raise NotFound("no such allocation", field=f"updates[{i}].id")
        if update.get("client_status") not in ALLOC_CLIENT_STATUSES \
                or not isinstance(update["client_status"], str):
            raise ValidationError("unknown client_status", field=f"updates[{i}].client_status")
        foreign = sorted(str(k) for k in set(update) - ALLOC_CLIENT_FIELDS)
        if foreign:
            raise ValidationError(f"an allocation update cannot set {foreign[0][:64]!r}",
                                  field=f"updates[{i}].{foreign[0][:64]}")
        _check_update(update, f"updates[{i}]")
        if node_id is not None and sm.allocations[update["id"]]["node_id"] != node_id:
            raise Conflict("allocation belongs to another node", field=f"updates[{i}].id")
    index = sm._bump()
    now = _time(command)
    for update in updates:
        alloc = sm.allocations[update["id"]]
        record = {**alloc, **update, "modify_index": index}
        if update["client_status"] in ENDED_CLIENT_STATUSES \
                and alloc["client_status"] not in ENDED_CLIENT_STATUSES:
            # When the servers learnt it ended, in their clock: reschedule delays count
            # from here (federation.scheduler.backoff).
            record["ended_time"] = now
        if isinstance(record.get("message"), str) and len(record["message"]) > checks.MAX_TEXT:
            # A task's last words can be long: kept short, never a reason to lose the status.
            record["message"] = record["message"][:checks.MAX_TEXT]
        sm.put_allocation(record)
    return {"count": len(updates)}


def _resources_ok(res: Any) -> bool:
    """The resources of a placement, of the types the fit check and the per-node usage
    read: whole non-negative millicores and MiB, a GPU count or share, device numbers."""
    if not isinstance(res, dict):
        return False
    cpu, memory, gpu = res.get("cpu_milli"), res.get("memory_mib"), res.get("gpu")
    devices = res.get("gpu_devices")
    return ((cpu is None or (type(cpu) is int and 0 <= cpu <= checks.MAX_INT))
            and (memory is None or (type(memory) is int and 0 <= memory <= checks.MAX_INT))
            and (gpu is None or (type(gpu) in (int, float) and 0 <= gpu <= 1024))
            and (devices is None or (type(devices) in (list, tuple) and len(devices) <= 1024
                                     and all(type(d) is int and 0 <= d < 1024
                                             for d in devices))))


def _ids(value: Any, field: str) -> list[str]:
    ids = checks.sequence(value or [], field)
    for i, alloc_id in enumerate(ids):
        if not isinstance(alloc_id, str):
            raise ValidationError("an allocation id must be a string", field=f"{field}[{i}]")
    return ids


def _plan_apply(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Commit one job's scheduling decision: new allocations, stops, evictions, and what
    could not be placed (the blocked demand the autoscaler reads). Refused when the job
    changed since it was planned, so a stale plan never lands."""
    job_id = _require(command, "job_id", str)
    # The fit rules a plan was made under: an entry from before versions existed was made
    # under version 1; a version this server does not know is refused on every server.
    check_version = command.get("check_version", 1)
    if check_version not in KNOWN_CHECK_VERSIONS:
        raise ValidationError(f"unknown plan check version {check_version!r}",
                              field="check_version")
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id[:checks.MAX_ID]!r}", field="job_id")
    if job["version"] != command.get("job_version") or job["stopped"]:
        raise Conflict("the job changed since this plan was made", field="job_version")
    group_fields = command.get("group_fields") or {}
    if not isinstance(group_fields, dict) or not all(
            isinstance(v, dict) for v in group_fields.values()):
        raise ValidationError("group_fields maps a group to its fields", field="group_fields")
    unplaced = checks.unplaced(command.get("unplaced") or {}, "unplaced")
    exhausted = checks.mapping(command.get("exhausted") or {}, "exhausted")
    raw = checks.sequence(command.get("allocations") or [], "allocations")
    # New dicts, one per placement (the command's own are never changed): the records to be.
    allocations = [
        {**group_fields.get(a["group"], {}), **a}
        if isinstance(a, dict) and isinstance(a.get("group"), str) else a
        for a in raw]
    stops = _ids(command.get("stops"), "stops")
    evictions = _ids(command.get("evictions"), "evictions")
    # The hot path of scheduling: cheap type checks per placement, and each resources
    # mapping checked once (placements of a group share their group's).
    fresh: set[str] = set()
    resources_ok: set[int] = set()
    for i, alloc in enumerate(allocations):
        if (type(alloc) is not dict or type(aid := alloc.get("id")) is not str
                or type(nid := alloc.get("node_id")) is not str
                or type(grp := alloc.get("group")) is not str
                or not (0 < len(aid) <= checks.MAX_ID and 0 < len(nid) <= checks.MAX_ID
                        and 0 < len(grp) <= checks.MAX_ID)):
            # As a snapshot's check wants them: the state can always be restored.
            raise ValidationError("an allocation needs a non-empty string id, node_id and "
                                  f"group of at most {checks.MAX_ID} characters",
                                  field=f"allocations[{i}]")
        res = alloc.get("resources")
        if res is not None and id(res) not in resources_ok:
            if not _resources_ok(res):
                raise ValidationError("resources must be whole non-negative numbers",
                                      field=f"allocations[{i}].resources")
            resources_ok.add(id(res))
        if alloc.get("job_id") != job_id:
            raise ValidationError("an allocation of another job",
                                  field=f"allocations[{i}].job_id")
        if type(instance := alloc.get("index", 0)) is not int \
                or not 0 <= instance <= checks.MAX_INT:
            raise ValidationError("an instance index is a whole number from 0",
                                  field=f"allocations[{i}].index")
        if alloc["id"] in sm.allocations or alloc["id"] in fresh:
            raise Conflict("allocation id already used", field=f"allocations[{i}].id")
        fresh.add(alloc["id"])
    for field, ids in (("stops", stops), ("evictions", evictions)):
        for i, alloc_id in enumerate(ids):
            if alloc_id not in sm.allocations:
                raise NotFound("no such allocation", field=f"{field}[{i}]")
    # An allocation released twice is released once: the fit check must not free it twice.
    stopping = dict.fromkeys(stops)
    stops = list(stopping)
    evictions = [a for a in dict.fromkeys(evictions) if a not in stopping]
    released = [*stops, *evictions]
    # An entry replayed from an older log is applied by the rules it was written under.
    duplicates = duplicate_placements(sm.allocations, sm.alloc_ids_by_job.get(job_id, ()),
                                      allocations, released) if check_version >= 2 else []
    candidates = without(allocations, duplicates, job) if duplicates else allocations
    accepted, refused = fitting_placements(sm.nodes, sm.allocations, sm.node_usage, job,
                                           candidates, released)
    index = sm._bump()
    # Every placement is a dict this handler built (its entry merged with its group's
    # fields above), so it becomes the record itself.
    for alloc in accepted:
        alloc.setdefault("desired_status", "run")
        alloc.setdefault("client_status", "pending")
        alloc["create_index"] = alloc["modify_index"] = index
    sm.put_new_allocations(job_id, accepted)
    for desired, ids in (("stop", stops), ("evict", evictions)):
        for alloc_id in ids:
            alloc = sm.allocations[alloc_id]
            if alloc["desired_status"] == "run":
                sm.put_allocation({**alloc, "desired_status": desired, "modify_index": index})
    sm.jobs[job_id] = {**job, "unplaced": unplaced, "exhausted": exhausted,
                       "modify_index": index}
    return {"placed": len(accepted), "stopped": len(stops), "evicted": len(evictions),
            "refused_nodes": refused, "refused": len(allocations) - len(accepted),
            "duplicates": len(duplicates)}


def _job_blocked(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Record why a job is not scheduled at all (e.g. waiting for a dependency, or its
    planning failed)."""
    job_id = _require(command, "job_id", str)
    job = sm.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id[:checks.MAX_ID]!r}", field="job_id")
    unplaced = checks.unplaced(command.get("unplaced") or {}, "unplaced")
    if job.get("unplaced") != unplaced:
        sm.jobs[job_id] = {**job, "unplaced": unplaced, "modify_index": sm._bump()}
    return {"id": job_id}


def _state_restore(sm: StateMachine, command: Command) -> dict[str, Any]:
    """Replace the workload with a snapshot's: checked completely, then swapped in whole."""
    restored = StateMachine.from_snapshot(command.get("snapshot"))
    index = max(sm.index, restored.index) + 1
    # Cluster membership (servers) and the dedupe window describe this cluster, not the
    # workload: a snapshot taken elsewhere must not replace them.
    restored.servers = sm.servers
    restored.applied = sm.applied
    restored.journal = sm.journal
    # Heartbeats in a backup are as old as the backup: give every ready node a full TTL from
    # the restore to report again, instead of declaring it dead at once.
    now = _time(command)
    restored.nodes = Table({
        node_id: {**node, "last_heartbeat": max(node["last_heartbeat"], now)}
        for node_id, node in restored.nodes.items()})
    restored._attach()
    restored.index = index
    restored.alloc_epoch = index
    restored.watch_floor = index
    restored.touched = {WATCH_ALL}
    sm.__dict__.update(restored.__dict__)
    return {"nodes": len(sm.nodes), "jobs": len(sm.jobs), "allocations": len(sm.allocations)}


_HANDLERS: dict[str, Callable[[StateMachine, Command], dict[str, Any]]] = {
    "noop": _noop,
    "leader.claim": _leader_claim,
    "server.upsert": _server_upsert,
    "node.register": _node_register,
    "node.heartbeat": _node_heartbeat,
    "node.drain": _node_drain,
    "node.mark_down": _node_mark_down,
    "job.register": _job_register,
    "job.deregister": _job_deregister,
    "job.revert": _job_revert,
    "alloc.stop": _alloc_stop,
    "alloc.update_status": _alloc_update_status,
    "state.restore": _state_restore,
    "plan.apply": _plan_apply,
    "job.blocked": _job_blocked,
    "gc": gc.collect,
}
_HANDLERS.update(capacity.HANDLERS)
_HANDLERS.update(queues.HANDLERS)
_HANDLERS.update(acl.HANDLERS)
_HANDLERS.update(namespaces.HANDLERS)
_HANDLERS.update(clusters.HANDLERS)
COMMAND_TYPES = tuple(_HANDLERS)
