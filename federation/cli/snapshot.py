"""`federation snapshot save|restore`: back up and restore the whole cluster state."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from federation.cli.common import fail, print_line, session

snapshot_app = typer.Typer(help="Back up and restore the cluster state.", no_args_is_help=True)


@snapshot_app.command("save")
def save(ctx: typer.Context, file: Path = typer.Argument(..., help="where to write the JSON")
         ) -> None:
    """Write the current state (every acknowledged write) to FILE."""
    with session(ctx) as client:
        data = client.snapshot()
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(file)
    print_line(f"Saved state at index {data.get('index')} to {file}: "
               f"{len(data.get('jobs', []))} jobs, {len(data.get('nodes', []))} nodes")


@snapshot_app.command("restore")
def restore(ctx: typer.Context, file: Path = typer.Argument(..., help="a saved snapshot")
            ) -> None:
    """Replace the whole cluster state with FILE (replicated to every server)."""
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{file}: cannot read the snapshot: {exc}")
    with session(ctx) as client:
        result = client.restore(data)
    print_line(f"Restored {result.get('jobs')} jobs, {result.get('nodes')} nodes, "
               f"{result.get('allocations')} allocations")


def register(app: typer.Typer) -> None:
    app.add_typer(snapshot_app, name="snapshot")
