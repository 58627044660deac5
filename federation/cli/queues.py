"""`federation queue apply|list`: fair-share queues, their weights, quotas and usage."""

from __future__ import annotations

from typing import Annotated

import typer

from federation.cli.common import (
    Output,
    OutputOption,
    output_format,
    print_json,
    print_line,
    print_listing,
    session,
)
from federation.cli.jobs import load_spec

queue_app = typer.Typer(help="Fair-share queues.", no_args_is_help=True)


@queue_app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Queue spec, YAML or JSON (- for stdin).")],
    output: OutputOption = None,
) -> None:
    """Create or replace a queue: name, weight, optional quota {cpu, memory, gpu}."""
    spec = load_spec(file)
    with session(ctx) as client:
        result = client.apply_queue(spec)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    print_line(f'Queue "{spec.get("name")}" applied.')


@queue_app.command("list")
def list_queues(ctx: typer.Context, output: OutputOption = None) -> None:
    """Queues with weight, quota, what they use now and their dominant share."""
    with session(ctx) as client:
        queues = client.list_queues()

    def quota(q: dict) -> str:
        if not q.get("quota"):
            return "-"
        limits = q["quota"]
        parts = [f"{limits[k]}{unit}" for k, unit in (("cpu", "m"), ("memory", " MiB"),
                                                      ("gpu", " GPU"))
                 if limits.get(k) is not None]
        return ", ".join(parts) or "none"

    print_listing(
        ctx, output, queues, "queues",
        ("NAME", "WEIGHT", "QUOTA", "CPU", "MEMORY", "GPU", "SHARE", "WAITING"),
        lambda q: (q["name"], q["weight"], quota(q), f"{q['usage']['cpu']}m",
                   f"{q['usage']['memory']} MiB", q["usage"]["gpu"],
                   f"{q['dominant_share']:.3f}", q["jobs_waiting"]))


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app, name="queue")
