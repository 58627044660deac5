"""`federation alloc ...`: the allocations placed for jobs on nodes."""

from __future__ import annotations

from typing import Annotated

import typer

from federation.cli.common import (
    ConsistentOption,
    Output,
    OutputOption,
    cpu,
    memory,
    output_format,
    print_json,
    print_line,
    print_table,
    session,
)

alloc_app = typer.Typer(help="Allocations: what runs where.", no_args_is_help=True)


def alloc_rows(allocations: list) -> list[tuple]:
    return [
        (
            a.get("id"),
            a.get("job_id"),
            a.get("group"),
            a.get("index"),
            a.get("node_id"),
            a.get("desired_status"),
            a.get("client_status"),
            cpu(a.get("resources")),
            memory(a.get("resources")),
        )
        for a in allocations
    ]


ALLOC_COLUMNS = ("ID", "JOB", "GROUP", "INDEX", "NODE", "DESIRED", "STATUS", "CPU", "MEMORY")


@alloc_app.command("list")
def list_allocations(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Option("--job", help="Only this job's.")] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only those on this node.")] = None,
    output: OutputOption = None,
    consistent: ConsistentOption = False,
) -> None:
    """List allocations, optionally of one job or on one node."""
    with session(ctx) as client:
        allocations = client.list_allocations(job=job, node=node, consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(allocations)
    elif not allocations:
        print_line("No allocations.")
    else:
        print_table(None, ALLOC_COLUMNS, alloc_rows(allocations))


def register(app: typer.Typer) -> None:
    """Add the `alloc` group to the top-level app."""
    app.add_typer(alloc_app, name="alloc")
