"""`federation simulate`: replay a task trace against a machine list, offline, through the
production planner (``plan_work`` over a snapshot of the machines), and report allocation
figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from federation.cli.common import (
    Output,
    OutputOption,
    fail,
    output_format,
    print_fields,
    print_json,
    print_table,
)
from federation.errors import FederationError


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"{what}: cannot read {path}: {exc.strerror or exc}")


def simulate(
    ctx: typer.Context,
    machines: Annotated[
        Path, typer.Option("--machines", help="Machines CSV (machines.csv or a raw node list).")
    ],
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks CSV (tasks.csv columns).")],
    policy: Annotated[
        str, typer.Option("--policy", help="default (fragmentation-aware, the scheduler's) | "
                          "bestfit (tightest fit, the baseline).")
    ] = "default",
    inflation: Annotated[
        float | None,
        typer.Option(
            "--inflation",
            help="Grow the workload to this multiple of the GPU capacity (the FGD paper's "
            "experiment); without it each task is offered once, in file order.",
            show_default=False,
        ),
    ] = None,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle the tasks first.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for shuffle, inflation, random.")] = 42,
    placements_out: Annotated[
        Path | None,
        typer.Option(
            "--placements-out",
            help="Write seq,task_id,node_id,gpus for every offered task.",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Simulate placing a task trace on a set of machines and report how well it packs."""
    from federation import simulation as sim  # numpy and the planner: only for this command

    if policy not in sim.POLICIES:
        fail(f"policy: unknown policy {policy!r}; one of {', '.join(sim.POLICIES)}")
    try:
        machine_list = sim.parse_machines(_read(machines, "machines"))
        task_list = sim.parse_tasks(_read(tasks, "tasks"))
        result = sim.run(
            machine_list, task_list, policy=policy, seed=seed, inflation=inflation, shuffle=shuffle
        )
    except FederationError as exc:
        prefix = f"{exc.field}: " if exc.field else ""
        fail(f"{prefix}{exc.message}")
    if placements_out is not None:
        try:
            placements_out.write_text(sim.placements_csv(result.placements))
        except OSError as exc:
            fail(f"placements-out: cannot write {placements_out}: {exc.strerror or exc}")
    summary = result.summary()
    if output_format(ctx, output) is Output.json:
        print_json(summary)
        return
    unalloc = summary["unallocated_gpu_pct_at_100_arrived"]
    print_fields(
        [
            ("Policy", policy),
            ("Machines", f"{len(machine_list)} ({result.offered} tasks offered)"),
            ("Placed", summary["placed"]),
            ("Dropped", summary["dropped"]),
            ("CPU allocated", f"{summary['cpu_allocation_pct']}%"),
            ("Memory allocated", f"{summary['memory_allocation_pct']}%"),
            ("GPU allocated", f"{summary['gpu_allocation_pct']}%"),
            (
                "Unallocated GPUs at 100% arrived",
                "not reached"
                if unalloc is None
                else f"{unalloc}% ({summary['unallocated_gpus_at_100_arrived']} GPUs)",
            ),
            ("Placements/s", summary["placements_per_s"]),
            ("Run time", f"{summary['elapsed_s']} s ({summary['cpu_s']} s of CPU)"),
        ]
    )
    if result.curve:
        print_table(
            "GPU allocation against arrived workload",
            ("ARRIVED %", "ALLOCATED %"),
            [(round(a, 1), round(b, 3)) for a, b in result.curve],
        )


def register(app: typer.Typer) -> None:
    """Add `simulate` to the top-level app."""
    app.command("simulate")(simulate)
