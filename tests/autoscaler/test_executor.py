"""The executor against the pure state machine and an in-memory provider (no Raft, no cloud).

The provider here is real code with the contract's rules (idempotent per token, tagged
instances); the state machine is the real one, committed to through ``apply``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from federation.autoscaler.executor import Executor, ExecutorSettings, default_bootstrap
from federation.autoscaler.reconciler import reconcile
from federation.errors import CapacityError
from federation.providers.base import (
    RUNNING,
    Bootstrap,
    Instance,
    InstanceType,
    LaunchResult,
    Provider,
)
from federation.specs.pool import PoolSpec
from federation.state.machine import StateMachine
from tests import placing

CATALOG = [
    InstanceType("small", 2000, 4096, 0, 0.10, None, ("z1",)),
    InstanceType("large", 8000, 16384, 0, 0.30, None, ("z1",)),
]


class MemoryProvider(Provider):
    """Instances in a dict; launching again with a token only tops up what is missing."""

    def __init__(self, name: str = "memory", catalog: Sequence[InstanceType] = CATALOG,
                 no_capacity: Sequence[str] = ()) -> None:
        super().__init__()
        self.name = name
        self.types = list(catalog)
        self.no_capacity = set(no_capacity)
        self.instances: dict[str, Instance] = {}
        self.calls: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        return list(self.types)

    def launch(self, pool: PoolSpec, instance_type: str, count: int, token: str,
               bootstrap: Bootstrap) -> LaunchResult:
        self.calls.append(("launch", (instance_type, count, token)))
        if instance_type in self.no_capacity:
            raise CapacityError(f"no {instance_type} capacity")
        have = [i for i in self.instances.values() if i.request_token == token]
        while len(have) < count:
            inst = Instance(f"i-{next(self._ids)}", pool.name, instance_type, RUNNING, "z1",
                            request_token=token, labels={"federation:pool": pool.name})
            self.instances[inst.id] = inst
            have.append(inst)
        return LaunchResult(token, count, tuple(have))

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        self.calls.append(("terminate", tuple(instance_ids)))
        for iid in instance_ids:
            self.instances.pop(iid, None)

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        return [i for i in self.instances.values() if i.pool == pool.name]

    def launches(self) -> list[Any]:
        return [args for kind, args in self.calls if kind == "launch"]

    def terminations(self) -> list[Any]:
        return [args for kind, args in self.calls if kind == "terminate"]


class HarnessContext:
    """The leader context the executor sees: the harness's machine, commits and clock."""

    def __init__(self, harness: Harness,
                 commit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.harness = harness
        self.changed = threading.Condition()
        self._commit = commit or harness.commit

    @property
    def machine(self) -> StateMachine:
        return self.harness.machine

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        return self._commit(command)

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        future.set_result(self.commit_sync(command))
        return future

    def now(self) -> float:
        return self.harness.now


class Harness:
    """A state machine, a clock and an executor wired together."""

    def __init__(self, providers: dict[str, Provider], **settings: Any) -> None:
        self.machine = StateMachine()
        self.now = 1000.0
        self.ids = itertools.count()
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.providers = providers
        self.settings = ExecutorSettings(**{"reconcile_every": 0.0, **settings})
        self.executor = self.new_leader()

    def new_leader(
            self, commit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Executor:
        """An executor with no memory, as a newly elected leader's (committing through
        ``commit`` when given, a wrapper around :meth:`commit`)."""
        self.executor = Executor(
            HarnessContext(self, commit), tracer=self.tracer_provider.get_tracer("test"),
            settings=self.settings, providers=self.providers,
            bootstrap=default_bootstrap("join-token"),
        )
        return self.executor

    def commit(self, command: dict[str, Any]) -> dict[str, Any]:
        command = {"id": f"cmd-{next(self.ids)}", **command, "time": self.now}
        return self.machine.apply(command)

    def pool(self, **spec: Any) -> None:
        body = {"name": "cloud", "provider": "memory", "max_nodes": 10, **spec}
        assert self.commit({"type": "pool.apply", "spec": body})["ok"]

    def join(self, instance_id: str, pool: str = "cloud", cpu: int = 2000) -> str:
        node_id = f"node-{instance_id}"
        result = self.commit({"type": "node.register", "node": {
            "id": node_id, "name": f"host-{instance_id}", "token_hash": "x", "pool": pool,
            "instance_id": instance_id, "instance_type": "small",
            "capacity": {"cpu_milli": cpu, "memory_mib": 4096, "gpu": 0}}})
        assert result["ok"]
        return node_id

    def job(self, job_id: str, cpu: int, count: int, constraints: list[Any] | None = None,
            unplaced: int | None = None) -> None:
        spec = {"id": job_id, "type": "batch", "priority": 50, "queue": "default",
                "depends_on": [], "groups": [{"name": "g", "count": count,
                                              "resources": {"cpu": cpu, "memory": 512},
                                              "constraints": constraints or []}]}
        assert self.commit({"type": "job.register", "spec": spec})["ok"]
        # What the scheduler records for a group it could not place.
        job = self.machine.jobs[job_id]
        self.machine.jobs[job_id] = {**job, "unplaced": {"g": {
            "unplaced": count if unplaced is None else unplaced, "explanation": "no room"}}}

    def records(self, kind: str) -> list[dict[str, Any]]:
        return sorted((r for r in self.machine.launches.values() if r["kind"] == kind),
                      key=lambda r: r["create_index"])


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider()


@pytest.fixture
def h(provider: MemoryProvider) -> Harness:
    return Harness({"memory": provider})


def test_min_nodes_are_launched_with_the_committed_token_and_not_twice(h, provider):
    h.pool(min_nodes=2)
    report = h.executor.tick()
    (record,) = h.records("launch")
    assert report.launched == [record["token"]]
    assert provider.launches() == [("small", 2, record["token"])]
    assert record["status"] == "done" and len(record["instances"]) == 2
    assert "below min_nodes 2" in record["reason"] and record["hourly_cost"] == pytest.approx(0.2)
    h.now += 5
    h.executor.tick()  # the two instances have not joined yet: they count as capacity
    assert len(provider.launches()) == 1


def test_blocked_demand_buys_the_cheapest_fit(h, provider):
    h.pool()
    h.job("etl", cpu=3000, count=2)  # 6 cores: one large (0.30) beats three small (0.30+)
    h.executor.tick()
    (record,) = h.records("launch")
    assert (record["instance_type"], record["count"]) == ("large", 1)
    assert "2 pending task(s)" in record["reason"]


def test_pending_work_is_noted_unplaceable_only_where_some_pool_exists(h, provider):
    h.job("etl", cpu=64000, count=2)  # no pool at all: nothing to buy, nothing to note
    h.executor.tick()
    assert h.records("note") == []
    h.pool(max_nodes=1)  # a pool, but no instance type holds 64 cores
    h.now += 5
    h.executor.tick()
    (note,) = h.records("note")
    assert note["action"] == "unplaceable" and "etl" in note["reason"]


def test_a_task_pinned_to_one_provider_is_never_bought_elsewhere():
    cheap, pinned = MemoryProvider("cheapcloud"), MemoryProvider("aws")
    h = Harness({"cheapcloud": cheap, "aws": pinned})
    h.pool(name="cheap", provider="cheapcloud", preference=1)
    h.pool(name="burst", provider="aws", region="us-east-1", preference=5)
    h.job("pinned", cpu=1000, count=1,
          constraints=[{"attribute": "provider", "operator": "=", "value": "aws"}])
    h.executor.tick()
    assert cheap.launches() == [] and len(pinned.launches()) == 1


def test_a_new_leader_resumes_an_open_launch_with_its_token(h, provider):
    h.pool(min_nodes=3)
    h.commit({"type": "launch.begin", "launch": {
        "token": "tok-old", "pool": "cloud", "provider": "memory", "instance_type": "small",
        "count": 3, "reason": "below min_nodes", "price_per_hour": 0.1, "hourly_cost": 0.3}})
    # The old leader called the provider for one instance before it died.
    provider.launch(PoolSpec(name="cloud", provider="memory"), "small", 1, "tok-old",
                    Bootstrap(("http://x",), "t"))
    report = h.executor.tick()
    assert report.resumed == ["tok-old"] and report.launched == []
    assert len(provider.instances) == 3
    assert h.machine.launches["tok-old"]["status"] == "done"
    assert [r["token"] for r in h.records("launch")] == ["tok-old"]


def test_dry_run_records_the_decision_and_does_not_act(provider):
    h = Harness({"memory": provider}, dry_run=True)
    h.pool(min_nodes=1)
    h.executor.tick()
    h.executor.tick()
    assert provider.calls == [] and h.records("launch") == []
    (note,) = h.records("note")
    assert note["dry_run"] and note["action"] == "launch"
    assert note["reason"].startswith("would launch 1 x small")


def test_a_pool_setting_turns_on_dry_run_for_that_pool_only(h, provider):
    h.pool(min_nodes=1, settings={"dry_run": True})
    h.executor.tick()
    assert provider.calls == [] and len(h.records("note")) == 1


def test_idle_nodes_are_drained_then_terminated_after_scale_down_idle(h, provider):
    h.pool(min_nodes=1, scale_down_idle=60)
    h.job("etl", cpu=1500, count=2, unplaced=2)
    h.executor.tick()
    (launch,) = h.records("launch")
    nodes = [h.join(iid) for iid in launch["instances"]]
    h.machine.jobs["etl"] = {**h.machine.jobs["etl"], "unplaced": {}}
    h.now += 30
    h.executor.tick()
    assert provider.terminations() == []
    h.now += 31
    h.executor.tick()
    (term,) = h.records("terminate")
    assert term["status"] == "done" and len(term["instance_ids"]) == 1
    assert provider.terminations() == [tuple(term["instance_ids"])]
    # The terminated machine's node leaves the table; the other one stays, not draining.
    gone = [n for n in nodes if n not in h.machine.nodes]
    assert gone == term["node_ids"]
    assert all(not h.machine.nodes[n]["draining"] for n in nodes if n not in gone)
    h.now += 120
    h.executor.tick()  # min_nodes 1: the last node stays
    assert len(provider.terminations()) == 1


def test_a_node_with_running_work_is_not_terminated(h, provider):
    h.pool(scale_down_idle=10)
    h.commit({"type": "launch.begin", "launch": {
        "token": "t", "pool": "cloud", "provider": "memory", "instance_type": "small",
        "count": 1, "reason": "r"}})
    h.executor.tick()  # resumes: one instance
    (iid,) = h.machine.launches["t"]["instances"]
    node = h.join(iid)
    h.commit({"type": "job.register", "spec": {"id": "svc", "type": "service", "groups": [
        {"name": "g", "count": 1, "resources": {"cpu": 100, "memory": 64}}]}})
    placing.place(h.commit, [{
        "id": "a1", "job_id": "svc", "group": "g", "node_id": node,
        "client_status": "running", "resources": {"cpu_milli": 100, "memory_mib": 64}}])
    h.now += 1000
    h.executor.tick()
    assert provider.terminations() == [] and not h.machine.nodes[node]["draining"]


def test_an_instance_that_never_joins_is_terminated_after_the_join_grace(h, provider):
    h.pool(min_nodes=1, settings={"join_grace": "5m"})
    h.executor.tick()
    (launch,) = h.records("launch")
    h.now += 200
    h.executor.tick()
    assert provider.terminations() == []
    h.now += 101
    h.executor.tick()
    (iid,) = launch["instances"]
    assert (iid,) in provider.terminations()
    assert h.machine.launches[launch["token"]]["instances"][iid] == "terminated"
    assert "never joined" in h.records("terminate")[0]["reason"]


def test_an_unknown_tagged_instance_is_reported_then_terminated_after_grace(h, provider):
    h.pool(settings={"orphan_grace": 60})
    provider.instances["i-stray"] = Instance("i-stray", "cloud", "small", RUNNING,
                                             request_token="someone-else")
    h.executor.tick()
    (note,) = h.records("note")
    assert note["action"] == "report_unknown" and "i-stray" in note["reason"]
    assert provider.terminations() == []
    h.now += 61
    h.executor.tick()
    assert provider.terminations() == [("i-stray",)]


def test_an_instance_of_a_pending_launch_is_not_unknown(h, provider):
    h.pool(settings={"orphan_grace": 0})
    h.commit({"type": "launch.begin", "launch": {
        "token": "tok", "pool": "cloud", "provider": "memory", "instance_type": "small",
        "count": 1, "reason": "r"}})
    provider.instances["i-9"] = Instance("i-9", "cloud", "small", RUNNING, request_token="tok")
    spec = PoolSpec(name="cloud", provider="memory", settings={"orphan_grace": 0})
    assert reconcile(h.machine, spec, provider.list_instances(spec), h.now, {}) == []


def test_a_capacity_error_is_recorded_and_the_type_is_cooled_down():
    provider = MemoryProvider(no_capacity=["small"])
    h = Harness({"memory": provider})
    h.pool(min_nodes=1)
    h.executor.tick()
    (failed,) = h.records("launch")
    assert failed["status"] == "failed" and "provider_capacity" in failed["error"]
    h.now += 1
    h.executor.tick()
    second = h.records("launch")[1]
    assert second["instance_type"] == "large" and second["status"] == "done"


def test_every_provider_call_is_a_span_under_its_decision(h, provider):
    h.pool(min_nodes=1)
    h.executor.tick()
    spans = {s.name: s for s in h.exporter.get_finished_spans()}
    decision, call = spans["autoscaler.scale_up"], spans["provider.launch"]
    assert call.parent is not None and call.parent.span_id == decision.context.span_id
    assert call.attributes["federation.token"] == h.records("launch")[0]["token"]
    assert spans["provider.list_instances"].parent is not None


def test_settings_from_the_environment():
    settings = ExecutorSettings.from_env({
        "FEDERATION_AUTOSCALER_INTERVAL": "0.5", "FEDERATION_AUTOSCALER_DRY_RUN": "1",
        "FEDERATION_AUTOSCALER_RECONCILE": "soon"})
    assert (settings.interval, settings.dry_run, settings.reconcile_every) == (0.5, True, 15.0)


# -- scale-down under a utilisation threshold ---------------------------------------------------


def two_nodes(h: Harness) -> tuple[str, str]:
    """Two joined nodes of pool ``cloud`` (2000m CPU each), launched through the executor."""
    h.commit({"type": "launch.begin", "launch": {
        "token": "t", "pool": "cloud", "provider": "memory", "instance_type": "small",
        "count": 2, "reason": "r", "price_per_hour": 0.1, "hourly_cost": 0.2}})
    h.executor.tick()  # resumes the launch: two instances
    a, b = sorted(h.machine.launches["t"]["instances"])
    return h.join(a), h.join(b)


def run(h: Harness, alloc_id: str, job_id: str, node: str, cpu: int, kind: str = "service",
        status: str = "running") -> None:
    if job_id not in h.machine.jobs:
        h.commit({"type": "job.register", "spec": {"id": job_id, "type": kind, "groups": [
            {"name": "g", "count": 1, "resources": {"cpu": cpu, "memory": 64}}]}})
    placing.place(h.commit, [{
        "id": alloc_id, "job_id": job_id, "group": "g", "node_id": node,
        "client_status": status, "resources": {"cpu_milli": cpu, "memory_mib": 64}}],
        job_version=h.machine.jobs[job_id]["version"])


def test_a_node_under_the_threshold_is_drained_and_terminated_once_its_service_moved(
        h, provider):
    h.pool(scale_down_idle=60, scale_down_utilization=0.5)
    a, b = two_nodes(h)
    run(h, "web-0", "web", a, cpu=400)  # a at 20%
    run(h, "db-0", "db", b, cpu=1200)  # b at 60%
    h.executor.tick()
    h.now += 61
    h.executor.tick()
    assert h.machine.nodes[a]["draining"] and not h.machine.nodes[b]["draining"]
    assert provider.terminations() == []  # the service still runs there
    (drain,) = [n for n in h.records("note") if n["action"] == "drain"]
    assert drain["detail"]["node_id"] == a
    assert "utilisation 20%" in drain["reason"] and f"fit on {b}" in drain["reason"]

    # The scheduler moves the service: a replacement runs on b, the old copy stops.
    run(h, "web-1", "web", b, cpu=400)
    h.now += 2
    h.executor.tick()
    assert provider.terminations() == []  # not while the old copy runs
    h.commit({"type": "alloc.stop", "alloc_ids": ["web-0"], "reason": "moved"})
    h.commit({"type": "alloc.update_status",
              "updates": [{"id": "web-0", "client_status": "complete"}]})
    h.now += 2
    h.executor.tick()
    (term,) = h.records("terminate")
    assert provider.terminations() == [tuple(term["instance_ids"])]
    assert term["node_ids"] == [a] and "drained to be released and now empty" in term["reason"]
    assert a not in h.machine.nodes and not h.machine.nodes[b]["draining"]


def test_a_drained_node_with_batch_work_is_terminated_only_when_the_work_ends(h, provider):
    h.pool(scale_down_idle=60, scale_down_utilization=0.5)
    a, b = two_nodes(h)
    run(h, "etl-0", "etl", a, cpu=300, kind="batch")
    run(h, "db-0", "db", b, cpu=1900)  # no room for anything: batch needs none
    h.executor.tick()
    h.now += 61
    h.executor.tick()
    assert h.machine.nodes[a]["draining"]
    for _ in range(3):
        h.now += 30
        h.executor.tick()
    assert provider.terminations() == []
    assert len([n for n in h.records("note") if n["action"] == "drain"]) == 1
    h.new_leader()  # the drain is in the state: a new leader finishes it
    h.executor.tick()
    h.commit({"type": "alloc.update_status", "updates": [
        {"id": "etl-0", "client_status": "complete"}]})
    h.executor.tick()
    assert len(provider.terminations()) == 1 and a not in h.machine.nodes


def test_a_node_whose_service_cannot_move_stays_and_says_why_once(h, provider):
    h.pool(scale_down_idle=60, scale_down_utilization=0.5)
    a, b = two_nodes(h)
    run(h, "web-0", "web", a, cpu=400)
    run(h, "db-0", "db", b, cpu=1800)
    h.executor.tick()
    for _ in range(3):
        h.now += 61
        h.executor.tick()
    assert provider.terminations() == [] and not h.machine.nodes[a]["draining"]
    (keep,) = h.records("note")
    assert keep["action"] == "keep"
    assert keep["reason"] == (f"node {a} stays: its utilisation 20% is under 50% but web-0 "
                              "(web/g, 400m CPU, 64 MiB) fits on no other node")


def test_without_a_threshold_a_busy_node_is_never_drained(h, provider):
    h.pool(scale_down_idle=60)
    a, b = two_nodes(h)
    run(h, "web-0", "web", a, cpu=100)
    run(h, "db-0", "db", b, cpu=100)
    for _ in range(3):
        h.now += 61
        h.executor.tick()
    assert not h.machine.nodes[a]["draining"] and not h.machine.nodes[b]["draining"]
    assert provider.terminations() == []


def test_dry_run_records_a_release_under_the_threshold_once_and_drains_nothing(provider):
    h = Harness({"memory": provider}, dry_run=True)
    h.pool(scale_down_idle=60, scale_down_utilization=0.5)
    h.commit({"type": "node.register", "node": {
        "id": "node-x", "name": "host-x", "token_hash": "x", "pool": "cloud",
        "instance_id": "i-x", "instance_type": "small",
        "capacity": {"cpu_milli": 2000, "memory_mib": 4096, "gpu": 0}}})
    b = h.join("i-y")
    run(h, "web-0", "web", "node-x", cpu=400)
    run(h, "db-0", "db", b, cpu=1200)
    for _ in range(4):
        h.now += 31
        h.executor.tick()
    (note,) = h.records("note")
    assert note["dry_run"] and note["reason"].startswith("would drain and terminate node host-x")
    assert "utilisation 20%" in note["reason"]
    assert not h.machine.nodes["node-x"]["draining"] and provider.calls == []


def test_an_idle_tick_makes_no_span_and_a_busy_one_holds_its_work(h, provider):
    h.executor.tick()  # no pool, nothing to do
    h.now += 5
    h.executor.tick()
    assert h.exporter.get_finished_spans() == ()
    h.pool(min_nodes=1)
    h.executor.tick()
    spans = h.exporter.get_finished_spans()
    (tick,) = [s for s in spans if s.name == "autoscaler.tick"]
    decision = next(s for s in spans if s.name == "autoscaler.scale_up")
    assert decision.parent is not None and decision.parent.span_id == tick.context.span_id
    assert tick.start_time <= decision.start_time and tick.end_time >= decision.end_time
