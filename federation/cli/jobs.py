"""`federation job ...`: run, inspect, list and stop workloads."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from federation.cli.allocs import ALLOC_COLUMNS, alloc_rows
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


@job_app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Job spec, YAML or JSON (- for stdin).")],
    output: OutputOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Submit a job (create it, or update it to a new version). FILE may also hold Kubernetes
    Deployments, Jobs and CronJobs, as `kubectl apply -f` takes them."""
    documents = load_documents(file)
    if "kind" in documents[0] or "apiVersion" in documents[0]:
        _run_manifests(ctx, documents, output, namespace)
        return
    spec = documents[0]
    with session(ctx, namespace) as client:
        result = client.submit_job(spec)
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
            if fmt is Output.table
            else []
        )
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
    if allocations:
        print_line("")
        print_table("Allocations", ALLOC_COLUMNS, alloc_rows(allocations))


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
    print_line(
        f'Job "{result.get("id", job_id)}" stopped: version {result.get("version", "-")}, '
        f"index {result.get('index', '-')}."
    )


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
