"""The openb GPU trace replayed through a real 3-server cluster, beside ``federation simulate``.

The 1,213 GPU nodes of the Alibaba openb trace are registered through the API (no agents:
nothing runs, nothing finishes) on three ``federation server`` processes; the FGD paper's
workload (the trace's tasks shuffled with the seed, then drawn with replacement until the
GPU request passes ``--inflation`` times capacity) is submitted as batch jobs through the
API, one at a time in arrival order, each task its own job (as ``federation simulate``
makes them). The leader's scheduler places them and commits the plans through Raft; once
the placements stop changing (nothing finishes, so a task not placed when planned never
is), the committed allocations, read after a read barrier, give the unallocated GPUs
at the moment the arrived GPU request reaches 100% of capacity.
The same workload through ``federation simulate``'s core gives its figure; the two should
agree within ``--tolerance`` points.

    python bench/openb_committed.py [--trace DIR] [--seed 42] [--inflation 1.3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine  # noqa: E402
from federation import simulation as sim  # noqa: E402
from federation.client import Client  # noqa: E402
from federation.simulation.replay import GPU_MODEL_LABEL, _Jobs  # noqa: E402
from federation.simulation.trace import MILLI, inflate  # noqa: E402

QUIET = 20.0  # seconds without a new placement after every job is in: settled
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "alibaba-openb"


def load(trace: Path) -> tuple[list[sim.Machine], list[sim.SimTask]]:
    machines = sim.parse_machines((trace / "openb_node_list_gpu_node.csv").read_text())
    tasks = sim.parse_tasks((trace / "tasks.csv").read_text())
    return machines, tasks


def registration(m: sim.Machine) -> dict[str, Any]:
    return {"name": m.machine_id, "pool": "openb", "provider": "onprem",
            "labels": {GPU_MODEL_LABEL: m.gpu_model} if m.gpu_model else {},
            "capacity": {"cpu_milli": m.cpu_milli, "memory_mib": m.memory_mib,
                         "gpu": m.num_gpu}}


def api_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The job spec as the API takes it: a task of the trace that asks for no memory (one
    does) asks for 1 MiB, the least a job spec may ask for."""
    groups = [{**g, "resources": {**g["resources"],
                                  "memory": max(1, g["resources"]["memory"])}}
              for g in spec["groups"]]
    return {**spec, "groups": groups}


def unallocated_at_100(workload: list[sim.SimTask], placed: list[bool],
                       capacity_milli: int) -> float:
    """Unallocated GPU (% of capacity) where the arrived GPU request reaches 100%: the
    allocated share interpolated between the arrivals around that point, as ``simulate``
    computes it."""
    arrived = allocated = 0
    previous = (0.0, 0.0)
    for task, ok in zip(workload, placed, strict=True):
        arrived += task.gpu_milli
        allocated += task.gpu_milli if ok else 0
        point = (arrived / capacity_milli, allocated / capacity_milli)
        if point[0] >= 1.0:
            (x0, y0), (x1, y1) = previous, point
            share = y0 + (y1 - y0) * (1.0 - x0) / (x1 - x0) if x1 > x0 else y1
            return 100 * (1 - share)
        previous = point
    raise ValueError("the workload never reaches 100% of the GPU capacity")


def replay(machines: list[sim.Machine], workload: list[sim.SimTask]) -> tuple[list[bool],
                                                                             float, float]:
    """Submit the workload to a fresh 3-server cluster; which tasks were placed, the
    seconds from the first submission until all were settled, and the submissions' share."""
    c = cluster(["--log-level", "warning", "--heartbeat-ttl", "36000"]).start()
    try:
        leader = c.wait_leader(60)
        jobs = _Jobs()
        specs = [api_spec(jobs.job_of(seq, task)[0]["spec"])
                 for seq, task in enumerate(workload)]
        with httpx.Client(timeout=60) as http:
            with ThreadPoolExecutor(8) as pool:  # nodes in any order
                list(pool.map(lambda m: http.post(leader.url + "/v1/nodes",
                                                  json=registration(m)).raise_for_status(),
                              machines))
            started = time.perf_counter()
            # One at a time, so the arrival order is the commit order, through the SDK: on
            # a loaded machine the leader may change meanwhile, and the SDK follows it
            # (a retried submission carries its idempotency key).
            with Client([s.url for s in c.servers], timeout=60, deadline=300) as sdk:
                for spec in specs:
                    sdk.submit_job(spec)
                submitted = time.perf_counter() - started
                # Nothing finishes, so a task not placed when it was planned is never
                # placed later (and a task nothing fits at all gets no unplaced report):
                # settled once the placements stop changing for QUIET seconds.
                deadline = time.monotonic() + 3600
                last, since = -1, time.monotonic()
                while time.monotonic() < deadline:
                    views = {j["id"]: j for j in sdk.list_jobs(consistent=True)}
                    placed = [sum(views[s["id"]]["allocations"].values()) > 0
                              if s["id"] in views else False for s in specs]
                    if sum(placed) != last:
                        last, since = sum(placed), time.monotonic()
                    elif time.monotonic() - since >= QUIET:
                        return placed, since - started, submitted
                    time.sleep(2.0)
            raise RuntimeError("the cluster did not settle every job within an hour")
    finally:
        c.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path,
                        default=Path(os.environ.get("OPENB_TRACE", DEFAULT_TRACE)))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--inflation", type=float, default=1.3)
    parser.add_argument("--tolerance", type=float, default=0.5)
    args = parser.parse_args()
    machines, tasks = load(args.trace)
    capacity = sum(m.num_gpu for m in machines) * MILLI
    workload = inflate(tasks, capacity, args.inflation, args.seed, shuffle=True)
    simulated = sim.run(machines, tasks, policy="default", seed=args.seed,
                        inflation=args.inflation, shuffle=True)
    placed, seconds, submitted = replay(machines, workload)
    committed = unallocated_at_100(workload, placed, capacity)
    expected = float(simulated.unallocated_gpu_pct_at_100 or 0.0)
    print(f"machine: {machine()}; load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"openb, seed {args.seed}, inflation {args.inflation}: {len(workload)} tasks on "
          f"{len(machines)} nodes ({capacity // MILLI} GPUs)")
    print(f"simulate: unallocated GPUs at 100% arrived {expected:.3f}% "
          f"({simulated.placed} placed)")
    print(f"committed through 3 servers: {committed:.3f}% ({sum(placed)} placed; "
          f"{seconds:.1f} s, of which submitting {submitted:.1f} s)")
    difference = committed - expected
    verdict = "agree" if abs(difference) <= args.tolerance else "DISAGREE"
    print(f"difference {difference:+.3f} points: {verdict} (tolerance {args.tolerance})")
    if verdict != "agree":
        sys.exit(1)


if __name__ == "__main__":
    main()
