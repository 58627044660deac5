"""`federation alloc ...`: the allocations placed for jobs on nodes."""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import httpx
import typer

from federation.cli.common import (
    ConsistentOption,
    NamespaceOption,
    Output,
    OutputOption,
    cpu,
    describe_error,
    fail,
    memory,
    output_format,
    print_json,
    print_line,
    print_table,
    session,
    settings,
)
from federation.errors import error_from_body

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
    namespace: NamespaceOption = None,
) -> None:
    """List allocations, optionally of one job or on one node."""
    with session(ctx, namespace) as client:
        allocations = client.list_allocations(job=job, node=node, consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(allocations)
    elif not allocations:
        print_line("No allocations.")
    else:
        print_table(None, ALLOC_COLUMNS, alloc_rows(allocations))


@alloc_app.command("logs")
def logs(
    ctx: typer.Context,
    alloc_id: Annotated[str, typer.Argument(metavar="ALLOC", help="Allocation id.")],
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show stderr instead of stdout.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing output until the task ends.")
    ] = False,
) -> None:
    """Print an allocation's output, read from its node through the servers."""
    opts = settings(ctx)
    params = {"stream": "stderr" if stderr else "stdout", "follow": str(follow).lower()}
    headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}
    timeout = httpx.Timeout(min(10.0, opts.timeout), read=None if follow else opts.timeout)
    errors = []
    for address in [a.strip().rstrip("/") for a in opts.address.split(",") if a.strip()]:
        base = address if "://" in address else f"http://{address}"
        url = f"{base}/v1/allocations/{quote(alloc_id, safe='')}/logs"
        try:
            with httpx.stream("GET", url, params=params, headers=headers,
                              timeout=timeout) as answer:
                if answer.status_code == 503:
                    errors.append(f"{base}: HTTP 503")
                    continue
                if answer.status_code != 200:
                    answer.read()
                    try:
                        error = error_from_body(answer.status_code, answer.json())
                    except ValueError:
                        fail(f"{base} answered HTTP {answer.status_code}")
                    fail(describe_error(error))
                out = sys.stdout.buffer
                for chunk in answer.iter_raw():
                    out.write(chunk)
                    out.flush()
                return
        except (httpx.TransportError, OSError) as exc:
            errors.append(f"{base}: {exc!r}")
        except KeyboardInterrupt:
            return
    fail("could not read the logs from any server: " + "; ".join(errors))


def register(app: typer.Typer) -> None:
    """Add the `alloc` group to the top-level app."""
    app.add_typer(alloc_app, name="alloc")
