"""Snapshot cadence and snapshot loading: a node snapshots once its journal holds more bytes of
applied entries than the limit (whatever the entry count), restarts from snapshot and tail,
and a loaded state is kept out of the garbage collector's generations safely."""

from __future__ import annotations

import gc
import gzip
import pickle
import uuid
import weakref
from pathlib import Path

from pysyncobj.serializer import Serializer

from federation.raft.node import RaftConfig, RaftNode, RaftSettings
from federation.raft.storage import (
    SNAPSHOT_PICKLE_PROTOCOL,
    DurableJournal,
    read_snapshot,
    write_snapshot,
)
from federation.state.machine import StateMachine
from tests import placing
from tests.harness import SECRET, free_ports, wait_for

# Entries and time never trigger a snapshot here: only bytes can.
BY_BYTES = RaftSettings(compaction_min_entries=1_000_000, compaction_min_seconds=3600,
                        compaction_max_bytes=256 << 10)
PAD = "x" * 10_000  # one entry of about 10 KB per command


def single(root: Path, port: int) -> RaftNode:
    """A one-server cluster: it commits alone."""
    return RaftNode(RaftConfig(f"127.0.0.1:{port}", [], str(root), SECRET, BY_BYTES))


def commit_padded(node: RaftNode, prefix: str, count: int) -> None:
    for i in range(count):  # one at a time: one entry each
        node.commit({"type": "noop", "id": f"{prefix}{i}", "pad": PAD})


def journal_records(root: Path) -> int:
    journal = DurableJournal(str(root / "raft.journal"))
    try:
        return len(journal)
    finally:
        journal._destroy()


def test_a_journal_past_the_byte_limit_is_snapshotted_and_a_restart_reads_both(
        tmp_path: Path) -> None:
    (port,) = free_ports(1)
    node = single(tmp_path, port)
    try:
        wait_for(node.is_leader, 10, "the single server to lead")
        commit_padded(node, "below", 20)  # about 200 KB: under the limit
        assert not (tmp_path / "raft.snapshot").exists()
        commit_padded(node, "above", 20)  # about 400 KB in all: over it
        wait_for(lambda: (tmp_path / "raft.snapshot").exists(), 10, "a snapshot by bytes")
        wait_for(lambda: node._journal.bytes_through(node._sync.raftLastApplied) < 256 << 10,
                 10, "the journal cut back to what follows the snapshot")
        commit_padded(node, "tail", 3)
        applied = set(node.machine.applied)  # no-ops leave the state index as it was
    finally:
        node.stop()
    assert journal_records(tmp_path) < 20

    node = single(tmp_path, port)
    try:
        assert {f"tail{i}" for i in range(3)} | {f"below{i}" for i in range(20)} <= applied
        wait_for(lambda: applied <= set(node.machine.applied), 10,
                 "every command applied again, from the snapshot and the journal's tail")
    finally:
        node.stop()


def test_bytes_through_counts_the_records_up_to_an_index(tmp_path: Path) -> None:
    journal = DurableJournal(str(tmp_path / "raft.journal"), fsync=False)
    try:
        assert journal.bytes_through(5) == 0
        for index in range(10, 14):
            journal.add(b"c" * 100, index, 1)
        record = 8 + 16 + 100  # length and checksum, index and term, command
        assert journal.bytes_through(9) == 0
        assert journal.bytes_through(10) == record
        assert journal.bytes_through(12) == 3 * record
        assert journal.bytes_through(99) == 4 * record
        journal.deleteEntriesTo(2)  # what a snapshot through index 11 leaves
        assert journal.bytes_through(13) == 2 * record
    finally:
        journal._destroy()


def test_a_snapshot_is_written_with_protocol_5_and_either_format_loads(tmp_path: Path) -> None:
    data = ({"machine": {"jobs": {f"j{i}": {"id": f"j{i}"} for i in range(100)}}}, (b"", 7, 2))
    ours = tmp_path / "ours.snapshot"
    write_snapshot(str(ours), data, fsync=False)
    with gzip.open(ours) as g:
        raw = g.read()
    assert raw[:2] == pickle.PROTO + bytes([SNAPSHOT_PICKLE_PROTOCOL])
    # A server of the previous version (pysyncobj's own reader) loads it: rolling upgrades.
    assert Serializer(str(ours), 1 << 16, False, None, None, None).deserialize() == data

    theirs = tmp_path / "theirs.snapshot"  # pysyncobj's format: protocol 2, gzip level 9
    with gzip.open(theirs, "wb") as g:
        pickle.dump(data, g, protocol=2)
    assert read_snapshot(str(theirs)) == data


def test_loading_freezes_what_it_loaded_and_leaves_the_collector_as_it_was(
        tmp_path: Path) -> None:
    path = tmp_path / "raft.snapshot"
    write_snapshot(str(path), [{"k": [i]} for i in range(1000)], fsync=False)
    frozen = gc.get_freeze_count()
    try:
        data = read_snapshot(str(path))
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + 2 * len(data)  # each dict and its list
        del data  # reference counting still frees frozen objects
        assert gc.get_freeze_count() < frozen + 1000
        gc.disable()
        read_snapshot(str(path))
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def populated(node_id: str = "id-n1") -> StateMachine:
    sm = StateMachine()
    n = 0

    def apply(command: dict) -> dict:
        nonlocal n
        n += 1
        return sm.apply({"id": f"c{n}", "time": 100.0, **command})

    apply({"type": "node.register", "node": {
        "id": node_id, "name": "n1", "token_hash": "h",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    for j in range(5):
        apply({"type": "job.register", "spec": {
            "id": f"job{j}", "type": "service", "depends_on": [],
            "groups": [{"name": "w", "count": 2}]}})
        placing.place(apply, [{"id": f"a{j}-{i}", "job_id": f"job{j}", "group": "w",
                               "index": i, "node_id": node_id,
                               "resources": {"cpu": 100, "memory": 64},
                               "client_status": "running"} for i in range(2)])
    assert len(sm.allocations) == 10
    return sm


def test_a_loaded_state_holds_no_reference_cycles_so_freezing_it_leaks_nothing(
        tmp_path: Path) -> None:
    """Frozen objects are freed by reference counting only: a cycle in a replaced state
    would stay in memory for good."""
    path = tmp_path / "raft.snapshot"
    # Only this state's objects count: other tests' threads may drop garbage of their own
    # at any moment.
    marker = f"id-{uuid.uuid4().hex}"
    write_snapshot(str(path), ({"machine": populated(marker)}, (b"", 2, 1)), fsync=False)
    gc.collect()  # earlier tests' garbage (a stopped node and its pysyncobj cycles)
    data = read_snapshot(str(path))
    machine = data[0]["machine"]
    assert len(machine.allocations) == 10
    gone = weakref.ref(machine)
    gc.unfreeze()  # let the collector see the loaded objects again
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays in gc.garbage
    try:
        del data, machine
        assert gone() is None  # freed by reference counting alone
        gc.collect()
        leaked = [o for o in gc.garbage
                  if (isinstance(o, StateMachine) and marker in o.nodes)
                  or (isinstance(o, dict) and o.get("node_id") == marker)]
        assert leaked == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
