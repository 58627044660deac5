"""The Raft layer on its own: group commit, per-caller results, ids applied once, barriers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.errors import FederationError, ValidationError
from federation.raft.node import RaftConfig, RaftNode
from tests.harness import SECRET, free_ports, wait_for


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[RaftNode]]:
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    started = [
        RaftNode(RaftConfig(addr, [a for a in addrs if a != addr], str(tmp_path / f"n{i}"),
                            SECRET))
        for i, addr in enumerate(addrs)
    ]
    try:
        # Until the first commit, a split vote at start can still unseat the first leader.
        wait_for(lambda: leader_commits(started), 10, "a leader that commits")
        yield started
    finally:
        for node in started:
            node.stop()


def leader_commits(nodes: list[RaftNode]) -> bool:
    leader = next((n for n in nodes if n.is_leader()), None)
    if leader is None:
        return False
    try:
        leader.barrier(timeout=2)
    except FederationError:
        return False
    return leader.is_leader()


def leader_of(nodes: list[RaftNode]) -> RaftNode:
    return next(n for n in nodes if n.is_leader())


def test_concurrent_commands_are_coalesced_and_each_caller_gets_its_own_result(nodes) -> None:
    leader = leader_of(nodes)
    batches_before = leader.batches_committed
    futures = [leader.submit({"type": "job.register", "spec": {
        "id": f"j{i}", "type": "service", "groups": [], "depends_on": []}}) for i in range(2000)]
    results = [f.result(timeout=20) for f in futures]
    assert [r["value"]["id"] for r in results] == [f"j{i}" for i in range(2000)]
    batches = leader.batches_committed - batches_before
    assert batches < 2000 / 4, f"{batches} batches for 2000 commands: nothing was coalesced"
    for node in nodes:
        wait_for(lambda n=node: len(n.machine.jobs) == 2000, 10, "replication")


def test_large_commands_replicate_in_entries_of_bounded_size(nodes) -> None:
    """Entries of several MiB (big plans) reach every server intact, a few per entry."""
    leader = leader_of(nodes)
    batches_before = leader.batches_committed
    padding = "x" * (900 << 10)  # about 0.9 MiB per command: two fit the 2 MiB entry cap
    futures = [leader.submit({"type": "job.register", "spec": {
        "id": f"big{i}", "type": "service", "groups": [], "depends_on": [], "note": padding}})
        for i in range(12)]
    assert all(f.result(timeout=30)["ok"] for f in futures)
    assert leader.batches_committed - batches_before >= 6  # never more than 2 per entry
    for node in nodes:
        wait_for(lambda n=node: all(f"big{i}" in n.machine.jobs for i in range(12)), 20,
                 "large entries replicated")


def test_a_command_too_large_for_one_entry_is_refused_before_replication(nodes) -> None:
    leader = leader_of(nodes)
    future = leader.submit({"type": "noop", "blob": "x" * (33 << 20)})
    with pytest.raises(ValidationError, match="more than"):
        future.result(timeout=5)


def test_a_command_submitted_to_a_follower_is_committed(nodes) -> None:
    follower = next(n for n in nodes if not n.is_leader())
    result = follower.commit({"type": "node.register",
                              "node": {"id": "x", "name": "x", "token_hash": "h"}})
    assert result["ok"] is True
    assert "x" in leader_of(nodes).machine.nodes


def test_a_retried_command_id_is_applied_once_across_servers(nodes) -> None:
    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    command = {"id": "same-id", "type": "job.register",
               "spec": {"id": "once", "type": "service", "groups": [], "depends_on": []}}
    first = leader.commit(dict(command))
    again = follower.commit(dict(command) | {"spec": {
        "id": "other", "type": "service", "groups": [], "depends_on": []}})
    assert again == first
    assert "other" not in leader.machine.jobs


def test_after_a_barrier_a_follower_has_applied_every_earlier_write(nodes) -> None:
    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    for i in range(200):
        leader.submit({"type": "job.register",
                       "spec": {"id": f"b{i}", "type": "service", "groups": [], "depends_on": []}})
    leader.barrier()
    follower.barrier()
    assert len(follower.machine.jobs) == 200


def test_leadership_changes_are_published(nodes) -> None:
    events: list[bool] = []
    got = threading.Event()
    leader = leader_of(nodes)

    def listener(is_leader: bool) -> None:
        events.append(is_leader)
        got.set()

    leader.on_leadership(listener)
    assert got.wait(5)
    assert events[0] is True


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        RaftNode(RaftConfig("127.0.0.1:1", [], str(tmp_path), "short"))


def test_a_caller_that_gave_up_on_its_command_does_not_stop_the_log(nodes) -> None:
    # An HTTP handler whose wait timed out cancels the future it waited on; the command is
    # still applied, and resolving its future must not break the tick that applies it.
    leader = leader_of(nodes)
    abandoned = [leader.submit({"type": "noop"}) for _ in range(50)]
    for future in abandoned:
        future.cancel()
    later = leader.commit({"type": "job.register", "spec": {
        "id": "after", "type": "service", "groups": [], "depends_on": []}}, timeout=10)
    assert later["ok"] is True
    assert leader.commit({"type": "noop"}, timeout=10)["ok"] is True


def test_a_cancelled_future_is_left_alone_and_never_raises_into_the_raft_tick() -> None:
    # A caller that stopped waiting cancels its future; the commit's outcome still arrives
    # (on pysyncobj's tick thread), and must neither raise there nor stop the others.
    from concurrent.futures import Future

    from federation.raft.node import _settle

    cancelled: Future = Future()
    assert cancelled.cancel()
    waiting: Future = Future()
    _settle(cancelled, result={"ok": True})
    _settle(cancelled, exc=RuntimeError("late"))
    _settle(waiting, result={"ok": True})
    assert cancelled.cancelled() and waiting.result(0) == {"ok": True}


def test_a_follower_whose_tick_thread_stalled_reads_the_leader_before_calling_an_election(
        nodes) -> None:
    """A follower's tick thread that did not run for longer than the election timeout (CPU
    starvation, a long apply) does not depose a leader whose messages wait in its socket."""
    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    terms = [n.term() for n in nodes]
    poller = follower._sync._poller
    poll = poller.poll
    stalled = threading.Event()
    stall = 3 * follower.config.settings.election_timeout_max

    def poll_then_stall(timeout: float) -> None:
        poll(timeout)
        if not stalled.is_set():
            stalled.set()
            time.sleep(stall)  # the tick thread stops between two ticks

    poller.poll = poll_then_stall
    wait_for(stalled.is_set, 5, "the follower's tick thread stalled")
    wait_for(lambda: follower._sync.stalls >= 1, 5 + stall, "a tick after the stall")
    time.sleep(0.5)
    assert [n.term() for n in nodes] == terms
    assert leader.is_leader()
