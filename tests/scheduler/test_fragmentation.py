"""The GPU fragmentation model on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from federation.scheduler.fragmentation import (
    TaskShape,
    build_profile,
    fragmentation,
    placement_loss,
    usable_mass,
)


def arr(*xs):
    return np.array(xs, dtype=np.int64)


HALF = build_profile([TaskShape(1000, 1, 500)])


@pytest.mark.parametrize(
    ("cpu", "gpus", "expected_usable"),
    [
        (8000, (1000, 1000), 2000.0),
        (8000, (600, 400), 600.0),  # the 400 slice cannot hold half a GPU
        (500, (1000, 1000), 0.0),  # not enough CPU for the task: nothing usable
        (8000, (0, 0), 0.0),
    ],
)
def test_usable_mass_for_a_single_shape(cpu, gpus, expected_usable):
    got = usable_mass(HALF, arr(cpu), arr(1 << 30), np.array([gpus], dtype=np.int64))
    assert got[0] == pytest.approx(expected_usable)


def test_fragmentation_is_free_gpu_the_profile_cannot_use():
    got = fragmentation(HALF, arr(8000), arr(1 << 30), np.array([[600, 400]], dtype=np.int64))
    assert got[0] == pytest.approx(400.0)


def test_weights_follow_counts_at_exponent_zero():
    p = build_profile([TaskShape(1, 1, 1000)] * 3 + [TaskShape(1, 0, 0)], gpu_weight_exponent=0)
    assert sorted(p.weight.tolist()) == pytest.approx([0.25, 0.75])


def test_a_positive_exponent_weighs_bigger_gpu_asks_more():
    p = build_profile([TaskShape(1, 4, 1000), TaskShape(1, 1, 1000)], gpu_weight_exponent=1)
    assert sorted(p.weight.tolist()) == pytest.approx([0.2, 0.8])


def test_loss_of_a_share_picks_the_device_that_keeps_usable_room():
    loss, device = placement_loss(
        HALF, TaskShape(1000, 1, 300), arr(8000), arr(1 << 30), np.array([[1000, 600]])
    )
    # From 600: 300 left, unusable (loss 600); from 1000: 700 left, usable (loss 300).
    assert loss[0] == pytest.approx(300.0)
    assert device[0] == 1000


def test_loss_is_infinite_where_the_shape_does_not_fit():
    loss, _ = placement_loss(
        HALF,
        TaskShape(1000, 2, 1000),
        arr(8000, 8000),
        arr(1 << 30, 1 << 30),
        np.array([[1000, 1000], [1000, 0]]),
    )
    assert np.isfinite(loss[0]) and np.isinf(loss[1])
