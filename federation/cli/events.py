"""`federation events`: what changes in the cluster (jobs, allocations, nodes), as it happens."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from federation.cli.allocs import short_id
from federation.cli.common import Output, OutputOption, output_format, print_line, session


def describe(event: dict[str, Any]) -> str:
    """One line for people: ``INDEX  TYPE  WHO  DETAIL``."""
    topic = event.get("topic")
    if topic == "allocation":
        who = f"{short_id(event.get('id'))} of {event.get('job_id')}"
        detail = f"desired {event.get('desired_status')}"
        if event.get("message"):
            detail += f": {event['message']}"
    elif topic == "node":
        who, detail = str(event.get("name")), ""
    else:
        who = str(event.get("id"))
        detail = f"version {event.get('version')}, {event.get('status')}"
    return f"{event.get('index'):>8}  {event.get('type'):<22} {who}  {detail}".rstrip()


def register(app: typer.Typer) -> None:
    @app.command("events")
    def events(
        ctx: typer.Context,
        follow: Annotated[bool, typer.Option(
            "--follow", "-f", help="Keep printing changes as they happen (Ctrl-C to stop).")
        ] = False,
        topic: Annotated[str, typer.Option(
            "--topic", help="Comma-separated: job, allocation, node.")] = "job,allocation,node",
        index: Annotated[int, typer.Option(
            "--index", min=0, help="Only changes after this state index.")] = 0,
        output: OutputOption = None,
    ) -> None:
        """Jobs, allocations and nodes that changed (after --index), oldest first; with
        --follow, then every change as it happens. A record changed twice between two
        reads is shown once, in its latest state. -o json prints one JSON object a line."""
        as_json = output_format(ctx, output) is Output.json
        topics = [t.strip() for t in topic.split(",") if t.strip()]
        with session(ctx) as client:
            try:
                while True:
                    found = client.events(index, wait=5.0 if follow else 0.0, topics=topics)
                    for event in found:
                        print_line(json.dumps(event) if as_json else describe(event))
                    if found:
                        index = max(index, int(found[-1]["index"]))
                    if not follow:
                        if not found and not as_json:
                            print_line("No changes.")
                        return
            except KeyboardInterrupt:
                return
