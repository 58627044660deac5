"""The scheduler on a real server: nodes registered through the API, jobs placed by the
leader, explanations for what does not fit, preemption, cron and dependency chains."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.server.config import ServerConfig
from federation.server.master import Master
from tests.harness import SECRET, Cluster, free_ports, wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator:
    c = Cluster(tmp_path / "c", size=1, extra_args=["--heartbeat-ttl", "120"]).start()
    try:
        c.wait_leader()
        yield c.servers[0]
    finally:
        c.kill_all()


def add_node(server, name: str, cpu: int = 2000, memory: int = 2048, **attrs) -> str:
    body = {"name": name, "capacity": {"cpu_milli": cpu, "memory_mib": memory}, **attrs}
    response = server.post("/v1/nodes", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def job(job_id: str, count: int, cpu: int = 100, **group) -> dict:
    return {"id": job_id, "type": group.pop("type", "service"),
            "priority": group.pop("priority", 50), "groups": [{
                "name": "g", "count": count, "resources": {"cpu": cpu, "memory": 64},
                "task": {"command": ["sleep", "600"]}, **group}]}


def placed(server, job_id: str, count: int) -> list[dict]:
    def ready():
        allocs = [a for a in server.get("/v1/allocations", params={"job": job_id}).json()
                  if a["desired_status"] == "run"]
        return allocs if len(allocs) == count else None
    return wait_for(ready, 10, f"{count} allocations of {job_id}")


def test_a_constrained_job_lands_only_where_allowed(server) -> None:
    allowed = {add_node(server, f"gold-{i}", labels={"tier": "gold"}, provider="onprem")
               for i in range(2)}
    add_node(server, "plain-0", labels={"tier": "std"}, provider="onprem")
    add_node(server, "cloud-0", labels={"tier": "gold"}, provider="gcp")
    spec = job("pinned", 6, constraints=[
        {"attribute": "labels.tier", "operator": "=", "value": "gold"},
        {"attribute": "provider", "operator": "!=", "value": "gcp"}])
    assert server.post("/v1/jobs", json=spec).status_code == 201
    allocs = placed(server, "pinned", 6)
    assert {a["node_id"] for a in allocs} <= allowed
    assert sorted(a["index"] for a in allocs) == list(range(6))
    assert allocs[0]["task"]["command"] == ["sleep", "600"]


def test_spread_balances_racks(server) -> None:
    for rack in ("r1", "r2", "r3"):
        for i in range(2):
            add_node(server, f"{rack}-{i}", rack=rack)
    assert server.post("/v1/jobs", json=job("spread", 6, spread="rack")).status_code == 201
    allocs = placed(server, "spread", 6)
    nodes = {n["id"]: n["rack"] for n in server.get("/v1/nodes").json()}
    assert Counter(nodes[a["node_id"]] for a in allocs) == {"r1": 2, "r2": 2, "r3": 2}


def test_an_impossible_gang_places_nothing_and_says_why(server) -> None:
    for i in range(2):
        add_node(server, f"n{i}", cpu=1000)
    spec = job("gang", 3, cpu=900, type="batch", gang=True)
    assert server.post("/v1/jobs", json=spec).status_code == 201
    status = wait_for(lambda: (j := server.get("/v1/jobs/gang").json())["unplaced"] and j, 10,
                      "the explanation")
    report = status["unplaced"]["g"]
    assert report["gang_incomplete"] is True
    assert report["unplaced"] == 3
    assert "gang could not be completed" in report["explanation"]
    assert server.get("/v1/allocations", params={"job": "gang"}).json() == []


def test_a_high_priority_job_preempts_lower_priority_work(server) -> None:
    add_node(server, "only", cpu=1000)
    low = job("low", 4, cpu=250, priority=10)
    assert server.post("/v1/jobs", json=low).status_code == 201
    placed(server, "low", 4)
    high = job("high", 2, cpu=400, priority=90)
    assert server.post("/v1/jobs", json=high).status_code == 201
    placed(server, "high", 2)
    low_allocs = server.get("/v1/allocations", params={"job": "low"}).json()
    evicted = [a for a in low_allocs if a["desired_status"] == "evict"]
    assert 1 <= len(evicted) <= 4
    running_low = [a for a in low_allocs if a["desired_status"] == "run"]
    assert sum(250 for _ in running_low) + 800 <= 1000


def test_plan_shows_placements_without_committing(server) -> None:
    add_node(server, "n0", cpu=1000)
    response = server.post("/v1/jobs/plan", json=job("dry", 5, cpu=300))
    body = response.json()
    assert response.status_code == 200
    assert len(body["placements"]) == 3
    assert body["unplaced"]["g"]["unplaced"] == 2
    assert server.get("/v1/jobs").json() == []


def test_a_lost_node_s_service_comes_back_elsewhere(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", size=1, extra_args=["--heartbeat-ttl", "1"]).start()
    try:
        c.wait_leader()
        server = c.servers[0]
        ids = [add_node(server, f"n{i}") for i in range(2)]
        tokens = {}
        for name, node_id in zip(("n0", "n1"), ids, strict=True):
            tokens[node_id] = server.post("/v1/nodes", json={
                "name": name, "capacity": {"cpu_milli": 2000, "memory_mib": 2048}},
                headers={"Idempotency-Key": f"again-{name}"}).json()["token"]
        survivor, victim = ids
        stop_at = time.monotonic() + 20

        def beat_survivor() -> bool:
            server.post(f"/v1/nodes/{survivor}/heartbeat", json={},
                        headers={"X-Node-Token": tokens[survivor]})
            return time.monotonic() > stop_at

        assert server.post("/v1/jobs", json=job("svc", 4, spread="node.id")).status_code == 201
        wait_for(lambda: beat_survivor() or len(server.get(
            "/v1/allocations", params={"node": victim}).json()) > 0, 10, "work on the victim")

        def all_on_survivor() -> bool:
            beat_survivor()
            live = [a for a in server.get("/v1/allocations", params={"job": "svc"}).json()
                    if a["desired_status"] == "run"]
            return len(live) == 4 and all(a["node_id"] == survivor for a in live)

        wait_for(all_on_survivor, 15, "the service back on the surviving node", interval=0.2)
        lost = [a for a in server.get("/v1/allocations", params={"node": victim}).json()]
        assert lost and all(a["client_status"] == "lost" for a in lost)
    finally:
        c.kill_all()


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    http_port, raft_port = free_ports(2)
    m = Master(ServerConfig(id="m", data_dir=str(tmp_path / "m"), http=f"127.0.0.1:{http_port}",
                            raft=f"127.0.0.1:{raft_port}", secret=SECRET, heartbeat_ttl=120))
    m.start()
    try:
        wait_for(lambda: m.raft.is_leader(), 10, "leadership")
        yield m
    finally:
        m.stop()


def _commit(master: Master, command: dict) -> dict:
    result = master.commit_sync(command)
    assert result["ok"], result
    return result["value"]


def _finish(master: Master, job_id: str) -> None:
    """Report every live allocation of the job complete, as its agent would."""
    allocs = [a for a in master.machine.allocations.values()
              if a["job_id"] == job_id and a["client_status"] in ("pending", "running")]
    _commit(master, {"type": "alloc.update_status",
                     "updates": [{"id": a["id"], "client_status": "complete"} for a in allocs]})


def test_a_dependency_chain_runs_in_order(master: Master) -> None:
    _commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "n1", "token_hash": "x",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    from federation.specs.job import validate_job

    for job_id, parents in (("extract", []), ("transform", ["extract"]),
                            ("load", ["transform"])):
        spec = validate_job({**job(job_id, 2, type="batch"), "depends_on": parents})
        _commit(master, {"type": "job.register", "spec": spec})

    def allocs(job_id: str) -> int:
        return sum(1 for a in master.machine.allocations.values() if a["job_id"] == job_id)

    wait_for(lambda: allocs("extract") == 2, 10, "extract placed")

    def waiting(job_id: str) -> bool:
        blocked = (master.machine.jobs[job_id].get("unplaced") or {}).get("*") or {}
        return "waiting for dependency" in blocked.get("explanation", "")

    # The pass that records why they wait is the pass that did not place them.
    wait_for(lambda: waiting("transform") and waiting("load"), 10, "both held back")
    later_passes(master)
    assert allocs("transform") == 0 and allocs("load") == 0
    _finish(master, "extract")
    wait_for(lambda: allocs("transform") == 2, 10, "transform placed after extract")
    assert allocs("load") == 0
    _finish(master, "transform")
    wait_for(lambda: allocs("load") == 2, 10, "load placed after transform")


def later_passes(master: Master, count: int = 2) -> None:
    """Wait for ``count`` more scheduling passes (each one preceded by a cron dispatch): a
    positive sign that the leader looked again, before asserting that nothing happened."""
    assert master.scheduler is not None
    seen = master.scheduler.passes
    wait_for(lambda: master.scheduler.passes >= seen + count, 10, f"{count} more passes")


def test_a_failed_batch_task_is_retried_then_fails_the_job(master: Master) -> None:
    _commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "n1", "token_hash": "x",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    from federation.specs.job import validate_job

    spec = validate_job({**job("flaky", 1, type="batch",
                               reschedule={"attempts": 2, "delay": "100ms"})})
    _commit(master, {"type": "job.register", "spec": spec})
    for attempt in range(3):
        alloc = wait_for(lambda: next((a for a in master.machine.allocations.values()
                                        if a["client_status"] == "pending"), None), 10,
                         f"attempt {attempt}")
        assert alloc.get("reschedules", 0) == attempt
        _commit(master, {"type": "alloc.update_status",
                         "updates": [{"id": alloc["id"], "client_status": "failed",
                                      "exit_code": 3}]})
    wait_for(lambda: master.machine.job_status(master.machine.jobs["flaky"]) == "failed", 10,
             "the job to fail")


def test_copies_of_a_settled_job_coming_up_cost_no_pass_but_one_ending_does(
        master: Master) -> None:
    _commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "n1", "token_hash": "x",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    from federation.specs.job import validate_job

    _commit(master, {"type": "job.register", "spec": validate_job(job("steady", 3))})
    allocs = wait_for(lambda: [a for a in master.machine.allocations.values()
                               if a["job_id"] == "steady"] or None, 10, "placed")
    assert len(allocs) == 3
    later_passes(master)  # the pass after the plan found the job settled
    assert master.scheduler is not None
    before = master.scheduler.considered
    _commit(master, {"type": "alloc.update_status", "updates": [
        {"id": a["id"], "client_status": "running", "healthy": True} for a in allocs]})
    later_passes(master)
    assert master.scheduler.considered == before
    _commit(master, {"type": "alloc.update_status", "updates": [
        {"id": allocs[0]["id"], "client_status": "failed", "exit_code": 1}]})
    wait_for(lambda: len(master.machine.alloc_ids_by_job["steady"]) == 4, 10, "a replacement")
    assert master.scheduler.considered > before


def test_a_rolling_update_moves_on_as_each_new_copy_comes_up(master: Master) -> None:
    _commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "n1", "token_hash": "x",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    from federation.specs.job import validate_job

    def live(version: int) -> list[dict]:
        return [a for a in master.machine.allocations.values()
                if a["job_id"] == "web" and a["job_version"] == version
                and a["desired_status"] == "run" and a["client_status"] in ("pending", "running")]

    def come_up(allocs: list[dict]) -> None:
        _commit(master, {"type": "alloc.update_status", "updates": [
            {"id": a["id"], "client_status": "running"} for a in allocs]})

    spec = {**job("web", 2), "update": {"max_parallel": 1}}
    _commit(master, {"type": "job.register", "spec": validate_job(spec)})
    come_up(wait_for(lambda: live(1) if len(live(1)) == 2 else None, 10, "version 1"))
    later_passes(master)
    spec["groups"][0]["task"] = {"command": ["sleep", "601"]}
    _commit(master, {"type": "job.register", "spec": validate_job(spec)})
    for step in (1, 2):
        new = wait_for(lambda s=step: live(2) if len(live(2)) == s else None, 10,
                       f"new copy {step}")
        assert len(live(1)) == 2 - step  # one old copy stopped per new one
        later_passes(master)
        assert len(live(2)) == step  # no further step until the new copy is up
        come_up([a for a in new if a["client_status"] == "pending"])
    wait_for(lambda: not live(1) and len(live(2)) == 2, 10, "every copy replaced")


def test_a_cron_job_launches_a_child_run_per_tick(master: Master) -> None:
    _commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "n1", "token_hash": "x",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    from federation.specs.job import validate_job

    spec = validate_job({**job("tick", 1, type="batch"), "schedule": "* * * * *"})
    # Submitted "two minutes ago": the latest missed tick fires now, once.
    _commit(master, {"type": "job.register", "spec": spec, "time": time.time() - 120})
    children = wait_for(lambda: [j for j in master.machine.jobs.values()
                                 if j.get("parent") == "tick"], 10, "a child run")
    assert len(children) == 1
    child = children[0]
    assert child["id"].startswith("tick-") and child["spec"]["schedule"] is None
    wait_for(lambda: any(a["job_id"] == child["id"]
                         for a in master.machine.allocations.values()), 10, "child placed")
    later_passes(master)  # the cron dispatch ran again since, and launched nothing more
    assert len([j for j in master.machine.jobs.values() if j.get("parent") == "tick"]) == 1


def test_a_drain_deadline_moves_batch_work_off_the_node(server) -> None:
    first = add_node(server, "first", cpu=1000)
    spec = job("long-batch", 2, cpu=300, type="batch")
    assert server.post("/v1/jobs", json=spec).status_code == 201
    placed(server, "long-batch", 2)
    second = add_node(server, "second", cpu=1000)
    answer = server.post(f"/v1/nodes/{first}/drain", json={"deadline": "1s"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["drain_deadline"] > 0
    moved = wait_for(lambda: (a := placed(server, "long-batch", 2)) and all(
        x["node_id"] == second for x in a) and a, 10, "batch work moved after the deadline")
    assert all(a.get("reschedules", 0) == 0 for a in moved)
    bad = server.post(f"/v1/nodes/{first}/drain", json={"deadline": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "deadline"


def test_a_queue_quota_holds_work_back_and_says_why(server) -> None:
    add_node(server, "n0", cpu=4000)
    import httpx

    put = httpx.put(server.url + "/v1/queues/small",
                    json={"weight": 1, "quota": {"cpu": 500, "memory": 1024}})
    assert put.status_code == 200, put.text
    bad = httpx.put(server.url + "/v1/queues/small", json={"weight": 0})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "weight"
    fits = {**job("fits", 2, cpu=200), "queue": "small"}
    too_big = {**job("too-big", 2, cpu=200), "queue": "small", "priority": 10}
    assert server.post("/v1/jobs", json=fits).status_code == 201
    placed(server, "fits", 2)
    assert server.post("/v1/jobs", json=too_big).status_code == 201
    held = wait_for(lambda: (j := server.get("/v1/jobs/too-big").json())["unplaced"] and j,
                    10, "the quota explanation")
    assert "quota" in held["unplaced"]["*"]["explanation"]
    queues = {q["name"]: q for q in server.get("/v1/queues").json()}
    assert queues["small"]["usage"]["cpu"] == 400
    assert queues["small"]["jobs_waiting"] == 1
    # Stopping the first job gives the quota back: the held job is placed.
    assert httpx.delete(server.url + "/v1/jobs/fits").status_code == 200
    placed(server, "too-big", 2)
