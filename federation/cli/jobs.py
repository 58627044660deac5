"""`federation job ...`: run, inspect, list and stop workloads."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from federation.cli.allocs import ALLOC_COLUMNS, alloc_rows, node_names, short_id
from federation.cli.common import (
    ConsistentOption,
    NamespaceOption,
    Output,
    OutputOption,
    counts,
    fail,
    output_format,
    print_fields,
    print_json,
    print_line,
    print_listing,
    print_table,
    session,
    settings,
    timestamp,
)
from federation.errors import ValidationError
from federation.specs.documents import decode

_YAML_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)

job_app = typer.Typer(help="Jobs: run, inspect and stop workloads.", no_args_is_help=True)


def load_spec(path: str) -> dict[str, Any]:
    """The job spec in a YAML or JSON file (``-`` reads stdin); exits with one line if bad.
    A Kubernetes manifest is passed on as it is (the server translates it)."""
    documents = load_documents(path)
    if len(documents) > 1:
        fail(f"{_name(path)}: holds {len(documents)} documents; give one job spec per file")
    return documents[0]


def _name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def load_documents(path: str) -> list[dict[str, Any]]:
    """The documents of a YAML or JSON file: one job spec, or Kubernetes manifests (a file
    may hold several, as for kubectl)."""
    name = _name(path)
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"cannot read {name}: not a UTF-8 text file")
    if path.endswith(".json"):
        content_type, chunks = "application/json", [text]
    else:  # a YAML stream: each document decoded alone, with the same bounds
        content_type, chunks = "application/yaml", _YAML_SEPARATOR.split(text)
    try:
        documents = [d for d in (decode(chunk, content_type=content_type)
                                 for chunk in chunks if chunk.strip()) if d is not None]
    except ValidationError as exc:
        fail(f"{name}: {exc.message}")
    if not documents:
        fail(f"{name}: empty file, expected a job spec")
    for spec in documents:
        if not isinstance(spec, dict):
            fail(f"{name}: a job spec is a mapping (id, type, groups, ...), not a {_kind(spec)}")
    manifests = [d for d in documents if "apiVersion" in d or "kind" in d]
    if len(documents) > 1 and len(manifests) != len(documents):
        fail(f"{name}: holds {len(documents)} documents; give one job spec per file "
             "(only Kubernetes manifests may share a file)")
    return documents


def _run_manifests(ctx: typer.Context, documents: list[dict[str, Any]],
                   output: Output | None, namespace: str | None) -> None:
    results = []
    with session(ctx, namespace) as client:
        for manifest in documents:
            results.append(client.submit_job(manifest))
    if output_format(ctx, output) is Output.json:
        print_json(results)
        return
    for manifest, result in zip(documents, results, strict=True):
        kind = str(manifest.get("kind", "")).lower()
        print_line(f'{kind} "{result.get("id")}" submitted in namespace '
                   f'{result.get("namespace", "default")}: version {result.get("version", "-")}')


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def never_placeable(spec: dict[str, Any], unplaced: dict[str, Any], nodes: list[Any],
                    pools: list[Any]) -> list[str]:
    """Why groups the plan left unplaced can never be placed: one instance is bigger than
    every node in some resource, and no pool can add a node. Empty when capacity might still
    come (a bigger node joins, the autoscaler buys one) or only current use is in the way."""
    if any(int(p.get("max_nodes") or 0) > int((p.get("nodes") or {}).get("total", 0))
           + int(p.get("launching") or 0) for p in pools):
        return []
    reasons = []
    for group in spec.get("groups") or []:
        if group.get("name") not in unplaced:
            continue
        res = group.get("resources") or {}
        want = {"cpu_milli": res.get("cpu", 0), "memory_mib": res.get("memory", 0),
                "gpu": -(-float(res.get("gpu") or 0) // 1)}  # a GPU share needs a whole GPU
        if any(all(float((n.get("capacity") or {}).get(k) or 0) >= v for k, v in want.items())
               for n in nodes if n.get("status") != "down"):
            continue
        largest = {k: max([float((n.get("capacity") or {}).get(k) or 0) for n in nodes] or [0])
                   for k in want}
        short = [k for k, v in want.items() if v > largest[k]]
        units = {"cpu_milli": "m CPU", "memory_mib": " MiB", "gpu": " GPU"}
        need = ", ".join(f"{want[k]:g}{units[k]} (largest node: {largest[k]:g})" for k in short)
        reasons.append(f'group "{group.get("name")}" needs {need} per instance and no pool '
                       "can add a node")
    return reasons


@job_app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Job spec, YAML or JSON (- for stdin).")],
    force: Annotated[bool, typer.Option(
        "--force", help="Submit even if no node or pool could ever hold it.")] = False,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Submit a job (create it, or update it to a new version). FILE may also hold Kubernetes
    Deployments, Jobs and CronJobs, as `kubectl apply -f` takes them.

    A job spec is planned first (nothing committed): a job that no node could ever hold and
    no pool could add room for is refused (exit 1) unless --force; one that merely cannot be
    placed now is submitted with a warning saying why.
    """
    documents = load_documents(file)
    if "kind" in documents[0] or "apiVersion" in documents[0]:
        _run_manifests(ctx, documents, output, namespace)
        return
    spec = documents[0]
    with session(ctx, namespace) as client:
        plan = client.plan_job(spec)
        unplaced: dict[str, Any] = plan.get("unplaced") or {}
        if unplaced:
            never = never_placeable(spec, unplaced, list(client.list_nodes()),
                                    client.list_pools())
            if never and not force:
                fail("; ".join(never) + ": not submitted (--force submits it anyway)")
        result = client.submit_job(spec)
    for group, report in unplaced.items():
        typer.echo(f"Warning: {'the job' if group == '*' else f'group {group!r}'} cannot be "
                   f"placed now: {(report or {}).get('explanation', '')}", err=True)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    job_id = result.get("id", spec.get("id"))
    print_line(
        f'Job "{job_id}" submitted: version {result.get("version", "-")}, '
        f"index {result.get('index', '-')}. See it with: federation job status {job_id}"
    )


@job_app.command("status")
def status(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    output: OutputOption = None,
    consistent: ConsistentOption = False,
    namespace: NamespaceOption = None,
) -> None:
    """Show a job: its status, task groups and allocations."""
    fmt = output_format(ctx, output)
    with session(ctx, namespace) as client:
        job = client.get_job(job_id, consistent=consistent)
        allocations = (
            client.list_allocations(job=job_id, consistent=consistent)
            if fmt is not Output.json
            else []
        )
        names = node_names(client) if allocations else {}
    if fmt is Output.json:
        print_json(job)
        return
    print_fields(
        [
            ("ID", job.get("id")),
            ("Type", job.get("type")),
            ("Priority", job.get("priority")),
            ("Queue", job.get("queue")),
            ("Status", job.get("status")),
            ("Stopped", job.get("stopped")),
            ("Version", job.get("version")),
            ("Submitted", timestamp(job.get("submit_time"))),
            ("Allocations", counts(job.get("allocations"))),
            ("Namespace", job.get("namespace", "default")),
        ]
        + ([("Schedule", job["schedule"])] if job.get("schedule") else [])
        + ([("Depends on", job["depends_on"])] if job.get("depends_on") else [])
    )
    groups = job.get("groups") or []
    if groups:
        print_line("")
        print_table(
            "Task groups",
            ("NAME", "COUNT", "CPU", "MEMORY", "GPU", "DRIVER"),
            [
                (
                    g.get("name"),
                    g.get("count"),
                    _res(g, "cpu", "m"),
                    _res(g, "memory", " MiB"),
                    _res(g, "gpu", ""),
                    (g.get("task") or {}).get("driver"),
                )
                for g in groups
            ],
        )
    unplaced: dict[str, Any] = dict(job).get("unplaced") or {}  # type: ignore[assignment]
    _print_unplaced(unplaced)
    replacements: list[dict[str, Any]] = dict(job).get("replacements") or []  # type: ignore[assignment]
    _print_replacements(replacements)
    if allocations:
        print_line("")
        print_table("Allocations", ALLOC_COLUMNS,
                    alloc_rows(allocations, names, fmt is Output.wide))


def _print_replacements(waiting: list[dict[str, Any]]) -> None:
    """Failed copies waiting out their reschedule delay (why a job is degraded)."""
    if not waiting:
        return
    now = time.time()
    print_line("")
    print_table("Waiting to be replaced (reschedule delay, doubled per failure in a row)",
                ("GROUP", "INDEX", "FAILED ALLOC", "DELAY", "REPLACED IN"),
                [(w.get("group"), w.get("index"), short_id(w.get("alloc_id")),
                  f"{float(w.get('delay') or 0):g}s",
                  f"{max(0.0, float(w.get('replace_at') or now) - now):.0f}s")
                 for w in waiting])


def _print_unplaced(unplaced: dict[str, Any]) -> None:
    if not unplaced:
        return
    print_line("")
    print_table("Not placed", ("GROUP", "WHY"),
                [(group, report.get("explanation", "")) for group, report in unplaced.items()])


@job_app.command("plan")
def plan(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Job spec, YAML or JSON (- for stdin).")],
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Show what submitting FILE would place where, without committing anything."""
    spec = load_spec(file)
    with session(ctx, namespace) as client:
        result = client.plan_job(spec)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    placements = result.get("placements") or []
    print_line(f'Job "{result.get("id")}" version {result.get("version")}: '
               f"{len(placements)} placement(s), {len(result.get('stops') or [])} stop(s), "
               f"{len(result.get('evictions') or [])} eviction(s)")
    if placements:
        print_table(None, ("GROUP", "INDEX", "NODE", "GPU DEVICES"),
                    [(p["group"], p["index"], p.get("node") or p["node_id"],
                      ",".join(map(str, p.get("gpu_devices") or [])) or "-")
                     for p in placements])
    _print_unplaced(result.get("unplaced") or {})


def _res(group: dict[str, Any], key: str, unit: str) -> str:
    value = (group.get("resources") or {}).get(key)
    return "-" if value is None else f"{value}{unit}"


@job_app.command("stop")
def stop(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Stop a job: its allocations are stopped and nothing new is placed."""
    with session(ctx, namespace) as client:
        result = client.stop_job(job_id)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    if result.get("changed") is False:
        print_line(f'Job "{result.get("id", job_id)}" was already stopped.')
        return
    print_line(
        f'Job "{result.get("id", job_id)}" stopped: version {result.get("version", "-")}, '
        f"index {result.get('index', '-')}."
    )


@job_app.command("scale")
def scale(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    count: Annotated[int, typer.Argument(min=0, help="New count of the group.")],
    group: Annotated[str | None, typer.Option(
        "--group", "-g", help="Task group (needed when the job has several).")] = None,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Set how many instances of a task group run (a new job version)."""
    with session(ctx, namespace) as client:
        result = client.scale_job(job_id, count, group)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    print_line(f'Job "{job_id}" group "{result.get("group")}" scaled to {count}: '
               f'version {result.get("version")}.')


@job_app.command("history")
def history(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    output: OutputOption = None,
    consistent: ConsistentOption = False,
    namespace: NamespaceOption = None,
) -> None:
    """Show the job's kept versions (the last 10 besides the current one), newest first,
    with the fields each changed."""
    with session(ctx, namespace) as client:
        versions = client.job_versions(job_id, consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(versions)
        return
    print_table(
        f'Versions of job "{job_id}"', ("VERSION", "SUBMITTED", "STATE", "CHANGES"),
        [(v.get("version"), timestamp(v.get("submit_time")),
          ("current" if v.get("current") else "") + (" (stopped)" if v.get("stopped") else ""),
          ", ".join(v.get("changes") or []) or "-")
         for v in versions])


@job_app.command("revert")
def revert(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    version: Annotated[int, typer.Argument(
        min=1, help="A kept version (see federation job history).")],
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Run a kept earlier version of the job again (a new version with its spec)."""
    with session(ctx, namespace) as client:
        result = client.revert_job(job_id, version)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    if not result.get("changed"):
        print_line(f'Job "{job_id}" already runs the spec of version {version}: nothing '
                   "changed.")
        return
    print_line(f'Job "{job_id}" reverted to the spec of version {version}: now version '
               f'{result.get("version")}.')


@job_app.command("logs")
def logs(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.")],
    group: Annotated[str | None, typer.Option(
        "--group", "-g", help="Only this task group's copies.")] = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="stderr instead of stdout.")] = False,
    tail: Annotated[int | None, typer.Option(
        "--tail", "-n", min=0, max=10_000, help="Only the last N lines of each copy.")] = None,
    namespace: NamespaceOption = None,
) -> None:
    """Print the output of every copy the job runs now, each line prefixed with the copy's
    short allocation id (copies one after the other, not interleaved)."""
    with session(ctx, namespace) as client:
        text = client.job_logs(job_id, group=group, stderr=stderr, tail=tail)
    sys.stdout.write(text)
    sys.stdout.flush()


@job_app.command("list")
def list_jobs(
    ctx: typer.Context, output: OutputOption = None, consistent: ConsistentOption = False,
    namespace: NamespaceOption = None,
) -> None:
    """List jobs with their status and allocation counts."""
    with session(ctx, namespace) as client:
        jobs = client.list_jobs(consistent=consistent)
    columns = ("ID", "TYPE", "PRIORITY", "QUEUE", "STATUS", "VERSION", "ALLOCATIONS")

    def row(j: dict[str, Any]) -> tuple[Any, ...]:
        return (j.get("id"), j.get("type"), j.get("priority"), j.get("queue"),
                j.get("status"), j.get("version"), counts(j.get("allocations")))

    if (namespace or settings(ctx).namespace) == "*":
        print_listing(ctx, output, jobs, "jobs", ("NAMESPACE", *columns),
                      lambda j: (j.get("namespace"), *row(j)))
    else:
        print_listing(ctx, output, jobs, "jobs", columns, row)


def register(app: typer.Typer) -> None:
    """Add the `job` group to the top-level app."""
    app.add_typer(job_app, name="job")
