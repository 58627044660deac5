"""Shared plumbing of the client commands: global settings, the SDK session, output and errors.

Every client command opens its ``Client`` through ``session(ctx)``: any error from the
cluster becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from federation.client import DEFAULT_ADDRESS, Client
from federation.errors import FederationError, Unauthorized
from federation.tracing import configure_tracing

EXIT_ERROR = 1


class Output(StrEnum):
    table = "table"
    wide = "wide"  # a table with whole ids and more columns
    json = "json"


@dataclass(frozen=True)
class Settings:
    """The global options of one invocation (set by the top-level callback)."""

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    output: Output = Output.table
    timeout: float = 30.0
    namespace: str | None = None


# A command-level ``-o`` overrides the global one, so both `federation -o json job list` and
# `federation job list -o json` work.
OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="Output format (overrides the global -o).",
        show_default=False,
    ),
]
ConsistentOption = Annotated[
    bool,
    typer.Option(
        "--consistent",
        help="Read through the leader (linearizable) instead of the answering server.",
    ),
]


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace (overrides the global -n; * for all on listings).",
        show_default=False,
    ),
]


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    obj = root.obj if root.obj is not None else ctx.obj
    return obj if isinstance(obj, Settings) else Settings()


def output_format(ctx: typer.Context, local: Output | None) -> Output:
    return local if local is not None else settings(ctx).output


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit non-zero."""
    typer.echo(f"Error: {one_line(message)}", err=True)
    raise typer.Exit(EXIT_ERROR)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_error(exc: FederationError) -> str:
    """``field: message (code)``, the way every command reports an error."""
    problems = exc.details.get("errors")
    if isinstance(problems, list) and len(problems) > 1:
        # Every problem of a rejected spec, so all are fixed in one go.
        listed = "; ".join(
            f"{p.get('field')}: {p.get('message')}" if p.get("field") else str(p.get("message"))
            for p in problems if isinstance(p, dict))
        return f"{len(problems)} problems: {listed} ({exc.code})"
    prefix = f"{exc.field}: " if exc.field else ""
    return f"{prefix}{exc.message} ({exc.code})"


_TRACING: list[Any] = []  # the CLI's tracer provider, configured once per process


def cli_tracing() -> Any:
    """The CLI's tracer provider per ``OTEL_*`` (as ``federation server`` reads them), or
    None when tracing is off: each API call is then a CLIENT span the server continues."""
    if not _TRACING:
        try:
            _TRACING.append(configure_tracing("federation-cli"))
        except ValueError as exc:
            fail(str(exc))
    return _TRACING[0]


@contextmanager
def session(ctx: typer.Context, namespace: str | None = None) -> Iterator[Client]:
    """A client for the cluster named by the global options, closed afterwards (its jobs in
    ``namespace`` when given, else in the global one)."""
    opts = settings(ctx)
    provider = cli_tracing()
    try:
        with Client(
            opts.address,
            token=opts.token or None,
            cacert=os.environ.get("FEDERATION_CACERT") or None,
            timeout=min(10.0, opts.timeout),
            deadline=opts.timeout,
            namespace=namespace if namespace is not None else opts.namespace,
        ) as client:
            yield client
    except Unauthorized as exc:
        if not opts.token:
            fail("this server requires an API token: set FEDERATION_TOKEN (or pass --token); "
                 "a dev cluster's is in .dev-data/api.token")
        fail(describe_error(exc))
    except FederationError as exc:
        fail(describe_error(exc))
    finally:
        if provider is not None:
            provider.force_flush(5000)  # a CLI process is short: send its spans now


# -- output --


def console(width: int | None = None) -> Console:
    # Built per use so it writes to whatever stdout is now (tests swap it).
    return Console(highlight=False, soft_wrap=False, width=width)


def print_renderable(renderable: Any) -> None:
    """Print without ever wrapping a cell: ids stay whole, piped output stays one row a line."""
    out = console()
    needed = out.measure(renderable, options=out.options.update_width(10_000)).maximum
    if needed > out.width:
        out = console(width=needed)
    out.print(renderable)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def print_line(text: str) -> None:
    typer.echo(text)


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    """A plain table, one row a line."""
    out = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False
    )
    for name in columns:
        out.add_column(name, no_wrap=True)
    for row in rows:
        out.add_row(*(cell(value) for value in row))
    return out


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    print_renderable(table(title, columns, rows))


def print_listing(ctx: typer.Context, output: Output | None, items: Sequence[Any], what: str,
                  columns: Iterable[str], row: Callable[[Any], Iterable[Any]]) -> None:
    """A list command's output: JSON as is, or a table, or ``No <what>.`` when empty."""
    if output_format(ctx, output) is Output.json:
        print_json(items)
        return
    if not items:
        print_line(f"No {what}.")
        return
    print_table(None, columns, [row(item) for item in items])


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Aligned ``Name  value`` lines for one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    for name, value in pairs:
        grid.add_row(name, cell(value))
    print_renderable(grid)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    # Rich markup would swallow text in square brackets (e.g. "groups[0]").
    return str(value).replace("[", "\\[")


def _epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from a server time in seconds, ms, µs or ns; None if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = float(value)
    while seconds > 1e11:  # later than year 5138 in seconds: a finer unit
        seconds /= 1e3
    return seconds


def timestamp(value: Any) -> str:
    """A server time (epoch number or ISO string) for people."""
    seconds = _epoch_seconds(value)
    if seconds is None:
        return str(value) if isinstance(value, str) and value else "-"
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def age(value: Any, now: float | None = None) -> str:
    """How long ago a server time was (``3s ago``), or ``-``."""
    seconds = _epoch_seconds(value)
    if seconds is None:
        return str(value) if isinstance(value, str) and value else "-"
    delta = max(0.0, (time.time() if now is None else now) - seconds)
    if delta < 60:
        return f"{delta:.0f}s ago"
    if delta < 3600:
        return f"{delta / 60:.0f}m ago"
    if delta < 86400:
        return f"{delta / 3600:.1f}h ago"
    return f"{delta / 86400:.1f}d ago"


def counts(mapping: Any) -> str:
    """``running 3, pending 1`` from ``{"running": 3, "pending": 1}``, zeros left out."""
    if not isinstance(mapping, Mapping):
        return "-"
    parts = [f"{k} {v}" for k, v in mapping.items() if v]
    return ", ".join(parts) or "none"


def cpu(resources: Any) -> str:
    value = resources.get("cpu_milli") if isinstance(resources, Mapping) else None
    return "-" if value is None else f"{value}m"


def memory(resources: Any) -> str:
    value = resources.get("memory_mib") if isinstance(resources, Mapping) else None
    return "-" if value is None else f"{value} MiB"


def used_of(allocated: Any, capacity: Any, key: str, unit: str) -> str:
    total = capacity.get(key) if isinstance(capacity, Mapping) else None
    used = allocated.get(key, 0) if isinstance(allocated, Mapping) else 0
    if total is None:
        return "-"
    return f"{used}/{total}{unit}"
