"""Namespaces in the state: keys, the register check, declared namespaces, periodic children."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.scheduler.periodic import child_id
from federation.specs.namespace import (
    check_namespace,
    job_key,
    key_consistent,
    read_scope,
    split_key,
    to_external,
    to_internal,
)
from federation.state.machine import StateMachine


def spec(job_id: str = "etl", namespace: str = "default", **extra) -> dict:
    return {"id": job_id, "namespace": namespace, "type": "batch", "depends_on": [],
            "groups": [{"name": "w", "count": 1}], **extra}


class Log:
    def __init__(self) -> None:
        self.sm = StateMachine()
        self.n = 0

    def __call__(self, type_: str, **fields) -> dict:
        self.n += 1
        return self.sm.apply({"id": f"c{self.n}", "type": type_, "time": 100.0, **fields})


@pytest.mark.parametrize(("namespace", "job_id", "key"), [
    ("default", "etl", "etl"),        # records written before namespaces keep their keys
    ("team-a", "etl", "team-a/etl"),
])
def test_a_job_key_is_the_bare_id_in_default_and_prefixed_elsewhere(namespace, job_id, key):
    assert job_key(namespace, job_id) == key
    assert split_key(key) == (namespace, job_id)


@pytest.mark.parametrize("bad", ["", "Team", "-a", "a-", "a_b", "a/b", "x" * 64, "*"])
def test_a_namespace_is_a_dns_1123_label(bad):
    with pytest.raises(ValidationError) as exc:
        check_namespace(bad)
    assert exc.value.field == "namespace"


def test_reads_default_to_the_default_namespace_and_star_means_all():
    assert read_scope(None) == "default"
    assert read_scope("*") is None
    assert read_scope("ml") == "ml"


def test_internal_and_external_forms_translate_ids_and_dependencies():
    user = spec("load", "ml", depends_on=["extract"])
    stored = to_internal(user)
    assert stored["id"] == "ml/load" and stored["depends_on"] == ["ml/extract"]
    assert key_consistent(stored)
    assert to_external(stored) == user


def test_the_same_id_lives_once_per_namespace():
    log = Log()
    assert log("job.register", spec=to_internal(spec("etl")))["ok"]
    assert log("job.register", spec=to_internal(spec("etl", "ml")))["ok"]
    assert sorted(log.sm.jobs) == ["etl", "ml/etl"]
    assert log.sm.jobs["ml/etl"]["version"] == 1


def test_a_key_that_disagrees_with_its_namespace_is_refused_and_changes_nothing():
    log = Log()
    result = log("job.register", spec={**spec("etl", "ml"), "id": "other/etl"})
    assert not result["ok"] and result["error"]["field"] == "namespace"
    assert log.sm.jobs == {} and log.sm.index == 0


def test_a_dependency_across_namespaces_is_refused():
    log = Log()
    log("job.register", spec=to_internal(spec("extract")))
    bad = {**to_internal(spec("load", "ml")), "depends_on": ["extract"]}
    assert not log("job.register", spec=bad)["ok"]


def test_a_declared_namespace_keeps_its_labels_and_an_unchanged_apply_is_no_write():
    log = Log()
    assert log("namespace.apply", name="ml", labels={"team": "ml"})["value"]["changed"]
    index = log.sm.index
    assert not log("namespace.apply", name="ml", labels={"team": "ml"})["value"]["changed"]
    assert log.sm.index == index
    assert log.sm.namespaces["ml"]["labels"] == {"team": "ml"}


def test_deleting_a_namespace_stops_its_jobs_only():
    log = Log()
    log("namespace.apply", name="ml")
    log("job.register", spec=to_internal(spec("etl", "ml")))
    log("job.register", spec=to_internal(spec("etl")))
    assert log("namespace.delete", name="ml")["value"]["stopped_jobs"] == 1
    assert log.sm.jobs["ml/etl"]["stopped"] and not log.sm.jobs["etl"]["stopped"]
    assert "ml" not in log.sm.namespaces


def test_the_default_namespace_cannot_be_deleted():
    assert Log()("namespace.delete", name="default")["error"]["field"] == "name"


def test_namespaces_survive_a_snapshot():
    log = Log()
    log("namespace.apply", name="ml", annotations={"a": "b"})
    restored = StateMachine.from_snapshot(log.sm.snapshot())
    assert restored.namespaces == log.sm.namespaces


def test_a_periodic_child_stays_in_its_parents_namespace():
    assert child_id("ml/nightly", 1000) == "ml/nightly-1000"
    long = child_id("ml/" + "x" * 63, 1000)
    namespace, local = split_key(long)
    assert namespace == "ml" and len(local) <= 63


def _with_allocation(log: Log, spec_: dict) -> None:
    log("node.register", node={"id": "n1", "name": "n1", "token_hash": "h",
                               "capacity": {"cpu_milli": 1000, "memory_mib": 512, "gpu": 0}})
    log("job.register", spec=spec_)
    assert log("plan.apply", job_id=spec_["id"], job_version=1, allocations=[
        {"id": "a1", "job_id": spec_["id"], "group": "w", "index": 0, "node_id": "n1",
         "job_version": 1}])["value"]["placed"] == 1


def test_a_new_version_that_only_changes_counts_keeps_the_running_copies():
    log = Log()
    _with_allocation(log, spec("web"))
    scaled = {**spec("web"), "groups": [{"name": "w", "count": 3}]}
    assert log("job.register", spec=scaled)["value"]["version"] == 2
    assert log.sm.allocations["a1"]["job_version"] == 2


def test_a_new_version_that_changes_the_task_replaces_the_copies():
    log = Log()
    _with_allocation(log, spec("web"))
    changed = {**spec("web"), "groups": [{"name": "w", "count": 1, "task": {"x": 1}}]}
    log("job.register", spec=changed)
    assert log.sm.allocations["a1"]["job_version"] == 1
