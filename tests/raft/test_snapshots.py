"""Snapshots through the real pysyncobj with the durable serializer: a compacted cluster
restarts from its snapshots, and a member that missed the compaction is sent one."""

from __future__ import annotations

import time
from pathlib import Path

from federation.raft.node import RaftConfig, RaftNode, RaftSettings
from tests.harness import SECRET, free_ports, wait_for

COMPACTING = RaftSettings(compaction_min_entries=20, compaction_min_seconds=3600)


def start(addrs: list[str], i: int, root: Path) -> RaftNode:
    return RaftNode(RaftConfig(addrs[i], [a for a in addrs if a != addrs[i]],
                               str(root / f"n{i}"), SECRET, COMPACTING))


def register(node: RaftNode, prefix: str, count: int) -> None:
    for i in range(count):  # one entry each, so the log grows past the compaction threshold
        node.commit({"type": "job.register",
                     "spec": {"id": f"{prefix}{i}", "type": "batch", "groups": [],
                              "depends_on": []}})


def test_a_lagging_member_is_sent_the_snapshot_and_a_restart_reads_it(tmp_path: Path) -> None:
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = [start(addrs, i, tmp_path) for i in range(3)]
    try:
        leader = wait_for(lambda: next((n for n in nodes if n.is_leader()), None), 10, "leader")
        lagging = next(n for n in nodes if n is not leader)
        index = nodes.index(lagging)
        lagging.stop()
        register(leader, "a", 60)
        wait_for(lambda: (tmp_path / f"n{nodes.index(leader)}" / "raft.snapshot").exists(),
                 15, "the leader's snapshot")
        time.sleep(0.5)  # let the compaction finish truncating the leader's journal
        register(leader, "b", 3)

        nodes[index] = start(addrs, index, tmp_path)
        wait_for(lambda: len(nodes[index].machine.jobs) == 63, 20,
                 "the restarted member to install the snapshot and catch up")
        assert (tmp_path / f"n{index}" / "raft.snapshot").exists()
        assert not (tmp_path / f"n{index}" / "raft.snapshot.1.tmp").exists()
    finally:
        for node in nodes:
            node.stop()

    nodes = [start(addrs, i, tmp_path) for i in range(3)]
    try:
        for node in nodes:
            wait_for(lambda n=node: len(n.machine.jobs) == 63, 20,
                     "every member to restore the state from snapshot and journal")
    finally:
        for node in nodes:
            node.stop()
