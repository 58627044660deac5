"""A stopped follower's journal is damaged, then it is restarted next to a live cluster: a
damaged tail (cut short, or a changed byte in the last record) is dropped and the follower
catches up with the leader; damage in the middle makes it exit non-zero naming the file and
the byte offset."""

from __future__ import annotations

import os
from pathlib import Path

from federation.raft.storage import scan_records
from tests.harness import Cluster, ServerProcess, wait_for


def job(job_id: str) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "work", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["true"]}}]}


def write_jobs(leader: ServerProcess, prefix: str, count: int) -> None:
    for i in range(count):
        response = leader.post("/v1/jobs", json=job(f"{prefix}-{i}"))
        assert response.status_code == 201, response.text


def caught_up(follower: ServerProcess, leader: ServerProcess, last_job: str) -> bool:
    target = leader.status()["commit_index"]
    return follower.status()["commit_index"] >= target and \
        follower.get(f"/v1/jobs/{last_job}").status_code == 200


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_tail_is_repaired_and_damage_in_the_middle_is_refused(
        cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]
    journal = follower.data_dir / "raft.journal"

    write_jobs(leader, "first", 5)
    wait_for(lambda: caught_up(follower, leader, "first-4"), 10, "the follower")

    # 1. the last record cut short
    follower.kill()
    os.truncate(journal, journal.stat().st_size - 5)
    write_jobs(leader, "second", 3)
    follower.start()
    wait_for(lambda: caught_up(follower, leader, "second-2"), 20, "catch-up after a cut tail")
    assert "damaged tail" in follower.log()

    # 2. one changed byte in the last record
    follower.kill()
    flip(journal, journal.stat().st_size - 2)
    write_jobs(leader, "third", 3)
    follower.start()
    wait_for(lambda: caught_up(follower, leader, "third-2"), 20,
             "catch-up after a changed byte in the last record")

    # 3. one changed byte in a record in the middle
    follower.stop()
    offsets = scan_records(journal.read_bytes(), str(journal)).offsets
    middle = offsets[len(offsets) // 2]
    flip(journal, middle + 12)
    follower.start()
    assert follower.proc is not None
    assert follower.proc.wait(20) != 0
    log = follower.log()
    assert str(journal) in log and f"byte offset {middle}" in log

    # The cluster went on committing throughout, and nobody cried divergence.
    write_jobs(leader, "fourth", 1)
    for server in cluster.servers:
        assert "may have diverged" not in server.log()
