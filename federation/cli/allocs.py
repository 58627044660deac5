"""`federation alloc ...`: the allocations placed for jobs on nodes."""

from __future__ import annotations

import sys
from typing import Annotated, Any
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
    print_fields,
    print_json,
    print_line,
    print_table,
    session,
    settings,
    timestamp,
)
from federation.client import Client
from federation.errors import NotFound, error_from_body

alloc_app = typer.Typer(help="Allocations: what runs where.", no_args_is_help=True)


SHORT_ID = 8


def short_id(alloc_id: object) -> str:
    """The last digits of an allocation id: ids share a long time-ordered prefix, so the
    end is what tells them apart (``alloc`` commands take it back)."""
    text = str(alloc_id or "")
    return text[-SHORT_ID:] if len(text) > SHORT_ID else text


def alloc_rows(allocations: list, node_names: dict[str, str] | None = None,
               wide: bool = False) -> list[tuple]:
    names = node_names or {}
    return [
        (
            a.get("id") if wide else short_id(a.get("id")),
            a.get("job_id"),
            a.get("group"),
            a.get("index"),
            (f'{names.get(str(a.get("node_id")), "-")} ({a.get("node_id")})' if wide
             else names.get(str(a.get("node_id")), a.get("node_id"))),
            a.get("desired_status"),
            a.get("client_status"),
            cpu(a.get("resources")),
            memory(a.get("resources")),
        )
        for a in allocations
    ]


def node_names(client: Client) -> dict[str, str]:
    return {str(n.get("id")): str(n.get("name")) for n in client.list_nodes()}


def resolve_alloc(client: Client, ref: str) -> str:
    """An allocation id from a whole id, a unique prefix, or a unique suffix (the short id
    tables show)."""
    try:
        return str(client.get_allocation(ref)["id"])
    except NotFound:
        pass
    ids = sorted({str(a.get("id")) for a in client.list_allocations()
                  if str(a.get("id")).startswith(ref) or str(a.get("id")).endswith(ref)})
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise NotFound(f'no allocation with id, prefix or short id "{ref}"')
    shown = ", ".join(short_id(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    fail(f'"{ref}" matches {len(ids)} allocations ({shown}): give more of the id')


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
    fmt = output_format(ctx, output)
    with session(ctx, namespace) as client:
        allocations = client.list_allocations(job=job, node=node, consistent=consistent)
        names = node_names(client) if fmt is not Output.json and allocations else {}
    if fmt is Output.json:
        print_json(allocations)
    elif not allocations:
        print_line("No allocations.")
    else:
        print_table(None, ALLOC_COLUMNS, alloc_rows(allocations, names, fmt is Output.wide))


@alloc_app.command("status")
def status(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    output: OutputOption = None,
    consistent: ConsistentOption = False,
) -> None:
    """Show one allocation: where it runs, its status, and why it failed or ended."""
    with session(ctx) as client:
        alloc = client.get_allocation(resolve_alloc(client, alloc_ref), consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(alloc)
        return
    record: dict[str, Any] = dict(alloc)
    exit_code = record.get("exit_code")
    why = record.get("message") or ""
    if exit_code is not None:
        why = f"{why} (exit code {exit_code})" if why else f"exited with code {exit_code}"
    if record.get("signal"):
        why = f"{why}, signal {record['signal']}" if why else f"killed by signal {record['signal']}"
    print_fields([
        ("ID", record.get("id")),
        ("Job", f'{record.get("job_id")} (group {record.get("group")}, '
                f'index {record.get("index")})'),
        ("Node", record.get("node_name") or record.get("node_id")),
        ("Status", record.get("client_status")),
        ("Desired", record.get("desired_status")),
        ("Why", why or None),
        ("Healthy", record.get("healthy")),
        ("Restarts", record.get("restarts", 0)),
        ("Started", timestamp(record.get("started_at"))),
        ("Finished", timestamp(record.get("finished_at"))),
        ("CPU", cpu(record.get("resources"))),
        ("Memory", memory(record.get("resources"))),
    ])


@alloc_app.command("stop")
def stop(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    output: OutputOption = None,
) -> None:
    """Stop one allocation; if its job still wants it, a replacement is placed (this is
    also how to restart one copy, possibly elsewhere)."""
    with session(ctx) as client:
        alloc_id = resolve_alloc(client, alloc_ref)
        result = client.stop_allocation(alloc_id)
    if output_format(ctx, output) is Output.json:
        print_json(result)
    elif result.get("changed", True):
        print_line(f"Allocation {short_id(alloc_id)} told to stop.")
    else:
        print_line(f"Allocation {short_id(alloc_id)} was already stopping or stopped.")


@alloc_app.command("restart")
def restart(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    output: OutputOption = None,
) -> None:
    """Restart a running task in place, on its node (stopped, then started again at once;
    no attempt of its restart policy is used). `alloc stop` instead replaces it."""
    with session(ctx) as client:
        alloc_id = resolve_alloc(client, alloc_ref)
        result = client.restart_allocation(alloc_id)
    if output_format(ctx, output) is Output.json:
        print_json(result)
    else:
        print_line(f"Allocation {short_id(alloc_id)} restarting on {result.get('node')}.")


@alloc_app.command("signal")
def signal_task(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    signal_name: Annotated[str, typer.Argument(
        metavar="SIGNAL", help="SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, ... (HUP is SIGHUP).")],
    output: OutputOption = None,
) -> None:
    """Send a signal to a running task (its process group, or its container)."""
    with session(ctx) as client:
        alloc_id = resolve_alloc(client, alloc_ref)
        result = client.signal_allocation(alloc_id, signal_name)
    if output_format(ctx, output) is Output.json:
        print_json(result)
    else:
        print_line(f"Sent {result.get('signal')} to allocation {short_id(alloc_id)}.")


@alloc_app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_in(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    command: Annotated[list[str], typer.Argument(
        metavar="COMMAND...", help="The command and its arguments (after --).")],
    timeout: Annotated[float, typer.Option(
        "--exec-timeout", min=0.1, max=3600, help="Kill the command after this many seconds."
    )] = 60.0,
) -> None:
    """Run a command where the task runs and print its output (not interactive: no stdin,
    no terminal). exec driver: the task's directory, environment and user; docker driver:
    docker exec in its container. Exits with the command's exit code."""
    import base64

    if command and command[0] == "--":  # `alloc exec ALLOC -- CMD ...`
        command = command[1:]
    if not command:
        fail("give the command to run after the allocation (federation alloc exec ALLOC -- "
             "CMD ...)")
    code = 1
    with session(ctx) as client:
        alloc_id = resolve_alloc(client, alloc_ref)
        for frame in client.exec_allocation(alloc_id, command, timeout):
            for stream, out in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                if stream in frame:
                    out.write(str(frame[stream]))
                    out.flush()
                elif f"{stream}_b64" in frame:
                    out.flush()
                    out.buffer.write(base64.b64decode(str(frame[f"{stream}_b64"])))
                    out.buffer.flush()
            if "error" in frame:
                print(f"Error: {frame['error']}", file=sys.stderr)
            if "exit_code" in frame:
                raw = frame["exit_code"]
                code = 1 if not isinstance(raw, int) else 128 - raw if raw < 0 else raw
    raise typer.Exit(code)


@alloc_app.command("logs")
def logs(
    ctx: typer.Context,
    alloc_ref: Annotated[str, typer.Argument(
        metavar="ALLOC", help="Allocation id, unique prefix or short id.")],
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show stderr instead of stdout.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing output until the task ends.")
    ] = False,
) -> None:
    """Print an allocation's output, read from its node through the servers."""
    opts = settings(ctx)
    with session(ctx) as client:
        alloc_id = resolve_alloc(client, alloc_ref)
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
