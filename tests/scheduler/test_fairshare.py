"""Dominant resource fairness across weighted queues, with quotas."""

from __future__ import annotations

from federation.scheduler.fairshare import (
    UNLIMITED,
    PendingWork,
    QueueSpec,
    dominant_share,
    drf_order,
)
from federation.scheduler.types import Resources

CAP = Resources(100_000, 100_000, gpu=10)


def test_dominant_share_is_the_largest_fraction_over_the_weight():
    assert dominant_share(Resources(50_000, 10_000, gpu=1), CAP) == 0.5
    assert dominant_share(Resources(10_000, 10_000, gpu=5), CAP, weight=2) == 0.25


def test_the_queue_with_the_lowest_dominant_share_goes_first():
    pending = [
        PendingWork("a1", "a", Resources(1000, 1000)),
        PendingWork("b1", "b", Resources(1000, 1000)),
    ]
    usage = {"a": Resources(50_000, 0), "b": Resources(10_000, 0)}
    ordered, held = drf_order(pending, [], usage, CAP)
    assert [w.id for w in ordered] == ["b1", "a1"] and held == {}


def test_weights_give_a_queue_a_proportional_turn():
    pending = [PendingWork(f"a{i}", "a", Resources(10_000, 0), submitted=i) for i in range(6)]
    pending += [PendingWork(f"b{i}", "b", Resources(10_000, 0), submitted=i) for i in range(6)]
    ordered, _ = drf_order(pending, [QueueSpec("a", weight=2), QueueSpec("b", weight=1)], {}, CAP)
    first_six = [w.queue for w in ordered[:6]]
    assert first_six.count("a") == 4 and first_six.count("b") == 2


def test_within_a_queue_higher_priority_then_submission_order():
    pending = [
        PendingWork("old", "q", Resources(1, 1), priority=50, submitted=1),
        PendingWork("urgent", "q", Resources(1, 1), priority=90, submitted=3),
        PendingWork("new", "q", Resources(1, 1), priority=50, submitted=2),
    ]
    ordered, _ = drf_order(pending, [], {}, CAP)
    assert [w.id for w in ordered] == ["urgent", "old", "new"]


def test_work_past_the_quota_is_held_with_a_reason():
    q = QueueSpec("q", quota=Resources(20_000, 100_000, gpu=1))
    pending = [PendingWork(f"w{i}", "q", Resources(8_000, 0), submitted=i) for i in range(3)]
    ordered, held = drf_order(pending, [q], {}, CAP)
    assert [w.id for w in ordered] == ["w0", "w1"]
    assert held == {"w2": "queue q quota exhausted: cpu 16000m, memory 0 MiB, gpu 0 in use of "
                          "cpu 20000m, memory 100000 MiB, gpu 1; this job needs cpu 8000m, "
                          "memory 0 MiB, gpu 0 more and waits for the queue's work to finish"}


def test_work_bigger_than_the_whole_quota_is_told_it_can_never_run():
    from federation.model import ResourceTotals

    q = QueueSpec("q", quota=ResourceTotals(500, UNLIMITED, UNLIMITED))
    ordered, held = drf_order([PendingWork("big", "q", Resources(1_000, 64))], [q], {}, CAP)
    assert ordered == []
    assert held == {"big": "needs cpu 1000m, more than queue q's whole quota (cpu 500m): it "
                           "can never run in this queue; raise the quota or use another queue"}


def test_a_quota_limits_only_the_resources_it_names():
    from federation.scheduler.order import queue_specs

    (memory_only,) = queue_specs([{"spec": {"name": "q", "weight": 1,
                                            "quota": {"memory": 1024}}}])
    ordered, held = drf_order([PendingWork("gpu", "q", Resources(50_000, 512, gpu=4))],
                              [memory_only], {}, CAP)
    assert [w.id for w in ordered] == ["gpu"] and held == {}
