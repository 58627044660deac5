"""The committed openb replay (bench/openb_committed.py) reads its figure from which tasks
the cluster placed; given the placements ``simulate`` made, that reading must give exactly
``simulate``'s own figure, or the two could not be compared."""

from __future__ import annotations

import random

import pytest

from bench.openb_committed import unallocated_at_100
from federation import simulation as sim
from federation.simulation.trace import MILLI, inflate


def small_trace(seed: int) -> tuple[list[sim.Machine], list[sim.SimTask]]:
    rng = random.Random(seed)
    machines = [sim.Machine(f"m{i}", 32000, 131072, rng.choice([1, 2, 4, 8]),
                            rng.choice(["P100", "V100"])) for i in range(12)]
    tasks = []
    for i in range(120):
        gpus = rng.choice([0, 1, 1, 2, 4])
        share = rng.choice([250, 500, 1000]) if gpus == 1 else (MILLI if gpus else 0)
        tasks.append(sim.SimTask(f"t{i}", rng.choice([1000, 4000, 8000]),
                                 rng.choice([2048, 8192]), gpus, share))
    return machines, tasks


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_committed_reading_of_simulates_placements_is_simulates_figure(seed: int) -> None:
    machines, tasks = small_trace(seed)
    capacity = sum(m.num_gpu for m in machines) * MILLI
    result = sim.run(machines, tasks, policy="default", seed=seed, inflation=1.3,
                     shuffle=True)
    workload = inflate(tasks, capacity, 1.3, seed, shuffle=True)
    assert [p.task_id for p in result.placements] == [t.task_id for t in workload]
    placed = [p.node_id is not None for p in result.placements]
    assert result.unallocated_gpu_pct_at_100 is not None
    assert unallocated_at_100(workload, placed, capacity) == pytest.approx(
        result.unallocated_gpu_pct_at_100, abs=1e-9)
