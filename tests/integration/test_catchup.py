"""A restarted server catches up from a journal kept short by the snapshot cadence, and holds
every write acknowledged before and while it was down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from federation.raft.storage import scan_records
from tests.harness import Cluster, ServerProcess, wait_for

CADENCE = 100  # --raft-snapshot-entries: the smallest the server accepts


def job(job_id: str) -> dict:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "work", "count": 1, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": ["true"]}}]}


@pytest.fixture
def snapshotting(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster",
                extra_args=["--raft-snapshot-entries", str(CADENCE)]).start()
    try:
        c.wait_leader(30)
        yield c
    finally:
        c.kill_all()


def write(http: httpx.Client, server: ServerProcess, job_id: str) -> None:
    response = http.post(server.url + "/v1/jobs", json=job(job_id))
    assert response.status_code == 201, response.text


def journal_entries(server: ServerProcess) -> int:
    path = server.data_dir / "raft.journal"
    return len(scan_records(path.read_bytes(), str(path)).entries)


def test_a_restarted_server_replays_a_bounded_journal_and_holds_every_acknowledged_write(
        snapshotting: Cluster) -> None:
    leader = snapshotting.wait_leader(30)
    victim = snapshotting.followers(leader)[0]
    acknowledged = [f"before-{i}" for i in range(6 * CADENCE)]
    with httpx.Client(timeout=10) as http:
        for job_id in acknowledged:  # one entry each: six times the cadence
            write(http, leader, job_id)
        wait_for(lambda: victim.status()["index"] >= leader.status()["index"], 20,
                 "the follower to hold the writes")
        victim.kill()
        assert (victim.data_dir / "raft.snapshot").exists()
        # Without the cadence the journal would hold every one of the 600 writes.
        assert journal_entries(victim) < 3 * CADENCE
        down = [f"down-{i}" for i in range(2 * CADENCE)]
        for job_id in down:
            write(http, leader, job_id)
        acknowledged += down

    target = leader.status()["index"]
    victim.start()
    wait_for(lambda: victim.status()["index"] >= target, 30,
             "the restarted server to reach the leader's state index")
    held = {j["id"] for j in victim.get("/v1/jobs", params={"limit": 10_000}).json()}
    assert set(acknowledged) <= held
