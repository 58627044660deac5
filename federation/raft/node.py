"""The Raft node: pysyncobj wiring, group commit, read barrier and leadership events.

Commands submitted from any thread are queued; one committer thread coalesces whatever is
waiting into a single replicated entry (``apply_batch``), so many concurrent writers share one
round of replication, and each caller gets its own result. Every wait is bounded. Failures
around leader changes become ``CommitTimeout`` (outcome unknown: retrying with the same command
id is safe, the state machine applies an id once) or ``NoLeader``.

The replicated object holds only the state machine: pysyncobj pickles it for snapshots (in a
forked child), so sockets, locks and threads live on ``RaftNode``, never on it.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pysyncobj.syncobj as pysyncobj_module
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.config import FAIL_REASON

from federation.errors import CommitTimeout, FederationError, NoLeader, ValidationError
from federation.ids import new_id
from federation.raft.storage import DurableJournal, DurableSerializer, verify_snapshot
from federation.raft.transport import AuditedTransport, PortLimits
from federation.state.machine import StateMachine

log = logging.getLogger("federation.raft")

MIN_SECRET_LENGTH = 16


# SyncObj builds its journal and snapshot serializer itself, from names in its module; only
# while one is being constructed, under this lock, those names point at the durable classes.
_CONSTRUCTION = threading.Lock()


@contextmanager
def _durable_storage(journal: DurableJournal, fsync: bool) -> Iterator[None]:
    def create_journal(path: str | None) -> DurableJournal:
        return journal

    def create_serializer(*args: Any) -> DurableSerializer:
        return DurableSerializer(*args, fsync=fsync)

    with _CONSTRUCTION:
        saved = pysyncobj_module.createJournal, pysyncobj_module.Serializer
        pysyncobj_module.createJournal = create_journal  # type: ignore[assignment]
        pysyncobj_module.Serializer = create_serializer  # type: ignore[assignment,misc]
        try:
            yield
        finally:
            pysyncobj_module.createJournal, pysyncobj_module.Serializer = saved


class _StallAwareSyncObj(SyncObj):
    """pysyncobj's node, reading what its peers sent before it judges them after a stall.

    pysyncobj checks the election deadline at the start of a tick and reads its sockets at
    the end. A follower whose tick thread did not run for longer than the election timeout
    (a long apply of a large plan, a CPU shared with busy processes, the interpreter lock
    held by the API) would start an election at once, with the leader's append-entries
    waiting unread in its socket: on a loaded machine that deposed healthy leaders again
    and again, and every change of leader sends the writes in flight back to their
    callers. After a gap of more than ``stall_after`` between two ticks this node reads its
    sockets first; a leader that really went silent is still found one timeout later."""

    def __init__(self, *args: Any, stall_after: float, **kwargs: Any) -> None:
        # Set before SyncObj starts its tick thread.
        self.stall_after = stall_after
        self.stalls = 0  # ticks that began late enough to read first (tests, logs)
        self._tick_started = 0.0
        super().__init__(*args, **kwargs)

    def _onTick(self, timeToWait: float = 0.0) -> None:
        now = time.monotonic()
        stalled = self._tick_started > 0 and now - self._tick_started > self.stall_after
        self._tick_started = now
        if stalled and not self._isLeader() and self._SyncObj__transport.ready:  # type: ignore[attr-defined]
            self.stalls += 1
            self._poller.poll(0)
        super()._onTick(timeToWait)


@dataclass(frozen=True)
class RaftSettings:
    """Timings tuned for failover in about a second (see docs/architecture.md)."""

    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.6
    heartbeat_period: float = 0.075
    connection_retry: float = 0.2
    connection_timeout: float = 1.5
    leader_fallback: float = 3.0
    commit_timeout: float = 5.0
    max_batch: int = 1024
    # Bytes of commands per replicated entry: a follower applies an entry in one go, so an
    # entry must stay small enough to apply well within an election timeout.
    max_batch_bytes: int = 2 << 20
    max_inflight_batches: int = 4
    # Snapshot cadence: a server snapshots its state once its journal holds more than this
    # many entries, or more than this many bytes of applied entries, or 120 s after its
    # last snapshot if anything was applied since. What a restarted server replays from its
    # own journal is bounded by the first two (docs/operations.md#snapshot-cadence).
    compaction_min_entries: int = 5_000
    compaction_max_bytes: int = 4 << 20
    compaction_min_seconds: float = 120.0
    # fsync the journal once per group-commit batch, term and vote before they are sent,
    # snapshots before they replace the old one. Off: a process crash loses nothing, a power
    # cut may lose acknowledged writes or a vote (see docs/operations.md).
    fsync: bool = True
    port: PortLimits = field(default_factory=PortLimits)


@dataclass
class RaftConfig:
    self_addr: str
    peers: list[str]
    data_dir: str
    secret: str
    settings: RaftSettings = field(default_factory=RaftSettings)


class ReplicatedState(SyncObjConsumer):
    """The part pysyncobj replicates and snapshots: the state machine and nothing else."""

    def __init__(self, on_applied: Callable[[float | None], None] | None = None) -> None:
        # Set before SyncObjConsumer.__init__, which marks the attributes existing then as
        # not replicated: the hook stays local, only ``machine`` is pickled.
        self.on_applied = on_applied
        super().__init__()
        self.machine = StateMachine()

    @replicated
    def apply_batch(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        started = time.monotonic()
        machine = self.machine
        results = [machine.apply(command) for command in commands]
        if self.on_applied is not None:
            self.on_applied(started)
        return results

    def _deserialize(self, data: Any) -> None:
        super()._deserialize(data)
        if self.on_applied is not None:
            self.on_applied(None)


# pysyncobj splits an entry larger than ``appendEntriesBatchSizeBytes`` into chunks, and its
# chunking can mark a chunk before the last one as final: the followers then fail to read the
# entry, forever. Entries are kept far below this size, so they are never split.
APPEND_ENTRIES_BYTES = 64 << 20
MAX_COMMAND_BYTES = 32 << 20


@dataclass
class _Pending:
    command: dict[str, Any]
    future: Future[dict[str, Any]]
    size: int = 0


_LEADER_CHANGE = (FAIL_REASON.DISCARDED, FAIL_REASON.NOT_LEADER, FAIL_REASON.LEADER_CHANGED,
                  getattr(FAIL_REASON, "UNKNOWN_OUTCOME", 7))


class RaftNode:
    """One master's Raft participant."""

    def __init__(self, config: RaftConfig) -> None:
        if len(config.secret) < MIN_SECRET_LENGTH:
            raise ValidationError(
                f"the Raft secret must be at least {MIN_SECRET_LENGTH} characters: without it "
                "anyone who reaches the Raft port can run code on this server",
                field="secret",
            )
        os.makedirs(config.data_dir, exist_ok=True)
        self.config = config
        self._change_listeners: list[Callable[[], None]] = []
        self.state = ReplicatedState(on_applied=self._notify_applied)
        self.rejected_connections = 0
        self._listeners: list[Callable[[bool], None]] = []
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._inflight = threading.BoundedSemaphore(config.settings.max_inflight_batches)
        self._stopping = threading.Event()
        # Leadership changes and new listeners go through one queue, handled by one thread,
        # so every listener sees the transitions in order.
        self._leadership_events: queue.SimpleQueue[
            bool | Callable[[bool], None] | None] = queue.SimpleQueue()
        self.batches_committed = 0
        self.commands_committed = 0
        s = config.settings
        journal_path = os.path.join(config.data_dir, "raft.journal")
        snapshot_path = os.path.join(config.data_dir, "raft.snapshot")
        # Both raise StorageDamaged, before anything starts, on data that cannot be trusted.
        verify_snapshot(snapshot_path)
        self._journal = DurableJournal(journal_path, fsync=s.fsync)
        conf = SyncObjConf(
            password=config.secret,
            bindAddress=config.self_addr,
            journalFile=journal_path,
            fullDumpFile=snapshot_path,
            appendEntriesUseBatch=False,
            appendEntriesBatchSizeBytes=APPEND_ENTRIES_BYTES,
            raftMinTimeout=s.election_timeout_min,
            raftMaxTimeout=s.election_timeout_max,
            appendEntriesPeriod=s.heartbeat_period,
            connectionRetryTime=s.connection_retry,
            connectionTimeout=s.connection_timeout,
            leaderFallbackTimeout=s.leader_fallback,
            commandsWaitLeader=False,
            logCompactionMinEntries=s.compaction_min_entries,
            logCompactionMinTime=s.compaction_min_seconds,
            dynamicMembershipChange=False,
            onStateChanged=self._on_state_changed,
        )
        journal = self._journal
        transport = type("FederationTransport", (AuditedTransport,), {
            "on_rejected": self._on_rejected,
            "before_send": staticmethod(journal.sync),
            "log_entries": staticmethod(lambda: journal),
            "port_limits": s.port,
        })
        with _durable_storage(journal, s.fsync):
            self._sync = _StallAwareSyncObj(
                config.self_addr, list(config.peers), conf=conf, consumers=[self.state],
                transportClass=transport, stall_after=s.election_timeout_min / 2,
            )
        # A single-server cluster sends nothing: entries added in a tick are made durable at
        # its end, before the next tick can count them committed.
        self._sync.addOnTickCallback(journal.sync)
        self._sync.addOnTickCallback(self._snapshot_if_journal_large)
        self._committer = threading.Thread(
            target=self._commit_loop, name="raft-committer", daemon=True
        )
        self._committer.start()
        self._notifier = threading.Thread(
            target=self._leadership_loop, name="raft-leadership", daemon=True
        )
        self._notifier.start()

    # -- information ---------------------------------------------------------------------
    @property
    def machine(self) -> StateMachine:
        return self.state.machine

    def is_leader(self) -> bool:
        return bool(self._sync._isLeader())

    def leader_addr(self) -> str | None:
        leader = self._sync._getLeader()
        return getattr(leader, "address", None) if leader is not None else None

    def term(self) -> int:
        return int(self._sync.raftCurrentTerm)

    def commit_index(self) -> int:
        return int(self._sync.raftCommitIndex)

    def status(self) -> dict[str, Any]:
        return dict(self._sync.getStatus())

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on the Raft thread: keep it short) after each applied batch."""
        self._change_listeners.append(listener)

    def _notify_applied(self, started: float | None) -> None:
        for listener in self._change_listeners:
            listener()

    def on_leadership(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(is_leader)`` (on a background thread) whenever this node gains
        or loses leadership."""
        self._leadership_events.put(listener)

    # -- submitting ----------------------------------------------------------------------
    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queue one command for the next replicated batch; the future holds its result."""
        if "id" not in command:
            command["id"] = new_id()
        if "time" not in command:
            command["time"] = time.time()
        future: Future[dict[str, Any]] = Future()
        size = len(pickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL))
        if size > MAX_COMMAND_BYTES:
            future.set_exception(ValidationError(
                f"the command is {size} bytes, more than the {MAX_COMMAND_BYTES} one Raft "
                "entry may carry"))
        elif self._stopping.is_set():
            future.set_exception(NoLeader("this server is shutting down"))
        else:
            self._queue.put(_Pending(command, future, size))
        return future

    def commit(self, command: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Submit and wait: the state machine's result, or a FederationError."""
        future = self.submit(command)
        return wait_result(future, timeout or self.config.settings.commit_timeout)

    def barrier(self, timeout: float | None = None) -> int:
        """Replicate a no-op: once it returns, this node has applied everything committed
        before the call, so local reads are linearizable."""
        result = self.commit({"type": "noop"}, timeout)
        return int(result["index"])

    def _commit_loop(self) -> None:
        settings = self.config.settings
        carried: _Pending | None = None  # taken from the queue but did not fit the last batch
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is None:
                return
            batch = [first]
            size = first.size
            self._inflight.acquire()
            while len(batch) < settings.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                if size + item.size > settings.max_batch_bytes:
                    carried = item
                    break
                batch.append(item)
                size += item.size
            self._send(batch)

    def _send(self, batch: list[_Pending]) -> None:
        def done(results: Any, error: int) -> None:
            # Runs inside pysyncobj's tick: it must never raise, or the tick stops halfway
            # through applying entries (and tries them again, and fails again, every tick).
            self._inflight.release()
            if error == FAIL_REASON.SUCCESS:
                self.batches_committed += 1
                self.commands_committed += len(batch)
                for pending, result in zip(batch, results, strict=True):
                    _settle(pending.future, result=result)
                return
            exc = _failure(error, self.leader_addr())
            for pending in batch:
                _settle(pending.future, exc=exc)

        try:
            self.state.apply_batch([p.command for p in batch], callback=done)
        except Exception as exc:  # pysyncobj refuses before queuing (e.g. not ready)
            self._inflight.release()
            failure = NoLeader(f"the Raft node refused the command: {exc}")
            for pending in batch:
                _settle(pending.future, exc=failure)

    # -- leadership ----------------------------------------------------------------------
    def _on_state_changed(self, old: int, new: int) -> None:
        self._leadership_events.put(new == 2)  # pysyncobj: 0 follower, 1 candidate, 2 leader

    def _leadership_loop(self) -> None:
        was_leader = False
        while True:
            event = self._leadership_events.get()
            if event is None:
                return
            if callable(event):
                self._listeners.append(event)
                if was_leader:
                    self._notify([event], True)
                continue
            if event == was_leader:
                continue
            was_leader = event
            log.info("%s leadership of the cluster", "gained" if event else "lost")
            self._notify(self._listeners, event)

    @staticmethod
    def _notify(listeners: list[Callable[[bool], None]], is_leader: bool) -> None:
        for listener in list(listeners):
            try:
                listener(is_leader)
            except Exception:
                log.exception("leadership listener failed")

    def _snapshot_if_journal_large(self) -> None:
        """pysyncobj counts entries only; an entry holds from one command to a whole group-
        commit batch, so the bytes of applied entries bound the replay as well. (On the
        Raft thread, where pysyncobj reads the flag at its next tick; it snapshots only if
        something was applied since its last snapshot.)"""
        sync = self._sync
        if not sync._SyncObj__serializer.idle():
            return  # the flag would start another snapshot as soon as this one is done
        limit = self.config.settings.compaction_max_bytes
        if self._journal.bytes_through(sync.raftLastApplied) > limit:
            sync._SyncObj__forceLogCompaction = True

    def _on_rejected(self, peer: str) -> None:
        self.rejected_connections += 1

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._queue.put(None)
        self._leadership_events.put(False)
        self._leadership_events.put(None)
        self._sync.destroy()
        self._committer.join(timeout=2)
        self._notifier.join(timeout=2)


def _settle(future: Future[dict[str, Any]], result: Any = None,
            exc: BaseException | None = None) -> None:
    """Resolve a caller's future, unless the caller gave up on it (an asyncio wrapper that
    timed out cancels the future it wraps): its command still applied, nobody waits."""
    if future.done():
        return
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled between the check and the call


def _failure(error: int, leader: str | None) -> FederationError:
    if error in _LEADER_CHANGE:
        return CommitTimeout(
            "leadership changed while the command was in flight: its outcome is unknown; "
            "retrying with the same command id is safe",
            leader_raft=leader,
        )
    if error == FAIL_REASON.QUEUE_FULL:
        return CommitTimeout("the Raft queue is full: retry shortly", leader_raft=leader)
    return NoLeader("no Raft leader is known right now", leader_raft=leader)


def wait_result(future: Future[dict[str, Any]], timeout: float) -> dict[str, Any]:
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        raise CommitTimeout(
            f"the command was not committed within {timeout:g}s: its outcome is unknown; "
            "retrying with the same command id is safe"
        ) from None
