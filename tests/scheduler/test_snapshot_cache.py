"""Snapshots taken with a view cache are the snapshots taken without one, only cheaper."""

from __future__ import annotations

from federation.scheduler import snapshot as snap
from federation.state.machine import StateMachine


class Log:
    def __init__(self) -> None:
        self.sm = StateMachine()
        self.n = 0

    def __call__(self, type_: str, **fields) -> dict:
        self.n += 1
        result = self.sm.apply({"id": f"c{self.n}", "type": type_, "time": 100.0, **fields})
        assert result["ok"], result
        return result


def job(job_id: str, priority: int = 50) -> dict:
    return {"id": job_id, "type": "service", "priority": priority, "depends_on": [],
            "groups": [{"name": "g", "count": 2, "resources": {"cpu": 100, "memory": 64},
                        "task": {"command": ["true"]}}]}


def alloc(alloc_id: str, job_id: str, node_id: str = "n1") -> dict:
    return {"id": alloc_id, "job_id": job_id, "group": "g", "index": 0, "node_id": node_id,
            "resources": {"cpu_milli": 100, "memory_mib": 64}}


def answers(nodes) -> tuple:
    """What a node set answers about its nodes (kept across snapshots that only differ by
    usage)."""
    return (nodes.has_gpus(), nodes.ready_capacity(), nodes.ready_values("zone"),
            [nodes.position(n.id) for n in nodes])


def same(a: snap.Snapshot, b: snap.Snapshot) -> bool:
    return (list(a.nodes) == list(b.nodes) and sorted(a.allocations, key=lambda v: v.id)
            == sorted(b.allocations, key=lambda v: v.id) and a.by_job == b.by_job
            and a.live_totals == b.live_totals and answers(a.nodes) == answers(b.nodes))


def test_a_cached_snapshot_follows_every_kind_of_change() -> None:
    log, cache = Log(), snap.ViewCache()
    log("node.register", node={"id": "n1", "name": "n1", "token_hash": "h",
                               "capacity": {"cpu_milli": 4000, "memory_mib": 4096}})
    for job_id in ("a", "b"):
        log("job.register", spec=job(job_id))
    steps = [
        lambda: log("plan.apply", job_id="a", job_version=1, allocations=[alloc("a0", "a")]),
        lambda: log("plan.apply", job_id="b", job_version=1, allocations=[alloc("b0", "b")]),
        lambda: log("alloc.update_status", updates=[{"id": "a0", "client_status": "running"}]),
        lambda: log("job.register", spec=job("b", priority=90)),  # priority of live views
        lambda: log("alloc.update_status", updates=[{"id": "b0", "client_status": "failed"}]),
        lambda: log("node.register", node={
            "id": "n2", "name": "n2", "token_hash": "h", "zone": "z2",
            "capacity": {"cpu_milli": 8000, "memory_mib": 8192, "gpu": 1}}),
        lambda: log("plan.apply", job_id="a", job_version=1,
                    allocations=[{**alloc("a1", "a", "n2"), "index": 1}]),
        lambda: log("node.mark_down", node_id="n2", last_heartbeat_seen=1e12),
        lambda: log("node.drain", node_id="n1", draining=True),
        lambda: log("state.restore", snapshot=log.sm.snapshot()),
    ]
    for step in steps:
        step()
        assert same(snap.take(log.sm, cache=cache), snap.take(log.sm))
    assert [v.priority for v in snap.take(log.sm, cache=cache).allocations] == [50]


def test_views_of_jobs_that_did_not_change_are_reused() -> None:
    log, cache = Log(), snap.ViewCache()
    log("node.register", node={"id": "n1", "name": "n1", "token_hash": "h",
                               "capacity": {"cpu_milli": 4000, "memory_mib": 4096}})
    for job_id in ("a", "b"):
        log("job.register", spec=job(job_id))
        log("plan.apply", job_id=job_id, job_version=1, allocations=[alloc(f"{job_id}0", job_id)])
    first = snap.take(log.sm, cache=cache)
    log("alloc.update_status", updates=[{"id": "b0", "client_status": "running"}])
    second = snap.take(log.sm, cache=cache)
    assert second.live_by_job["a"] is first.live_by_job["a"]
    assert second.live_by_job["b"] is not first.live_by_job["b"]
    assert second.nodes is first.nodes  # no node changed: the same node set, lookups kept
