"""`federation pool ...` and `federation autoscaler ...`: capacity sources and what the
autoscaler did with them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from federation.cli.common import (
    ConsistentOption,
    Output,
    OutputOption,
    age,
    fail,
    output_format,
    print_json,
    print_line,
    print_listing,
    print_table,
    session,
)
from federation.errors import ValidationError
from federation.specs.documents import decode

pool_app = typer.Typer(help="Pools: where nodes come from (providers).", no_args_is_help=True)
autoscaler_app = typer.Typer(help="The autoscaler: what it decided and why.",
                             no_args_is_help=True)


def load_pool(path: str) -> dict[str, Any]:
    """A pool spec from a YAML or JSON file (``-`` reads stdin), checked before sending."""
    name = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"cannot read {name}: not a UTF-8 text file")
    content_type = "application/json" if path.endswith(".json") else "application/yaml"
    try:
        data = decode(text, content_type=content_type)
    except ValidationError as exc:
        fail(f"{name}: {exc.message}")
    if not isinstance(data, dict):
        fail(f"{name}: a pool spec is a mapping (name, provider, ...)")
    from federation.specs.pool import parse_pool  # pydantic models: only when a spec is read

    try:
        parse_pool(data)
    except ValidationError as exc:
        fail(f"{name}: {exc.message}")
    return dict(data)


@pool_app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Pool spec, YAML or JSON (- for stdin).")],
    output: OutputOption = None,
) -> None:
    """Create or replace a pool."""
    spec = load_pool(file)
    with session(ctx) as client:
        result = client.apply_pool(spec)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    verb = "applied" if result.get("changed", True) else "unchanged"
    print_line(f'Pool "{result.get("name")}" {verb} (version {result.get("version")}).')


@pool_app.command("list")
def list_pools(
    ctx: typer.Context, output: OutputOption = None, consistent: ConsistentOption = False
) -> None:
    """List pools with their nodes, instances launching and hourly cost."""
    with session(ctx) as client:
        pools = client.list_pools(consistent=consistent)
    print_listing(
        ctx, output, pools, "pools",
        ("NAME", "PROVIDER", "REGION", "PREF", "MIN..MAX", "READY", "LAUNCHING", "COST"),
        lambda p: (p.get("name"), p.get("provider"), p.get("region"), p.get("preference"),
                   f"{p.get('min_nodes')}..{p.get('max_nodes')}",
                   (p.get("nodes") or {}).get("ready", 0), p.get("launching", 0),
                   f"${float(p.get('hourly_cost') or 0):.4f}/h"))


@pool_app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pool name.")],
    output: OutputOption = None,
) -> None:
    """Forget a pool (its instances are not terminated)."""
    with session(ctx) as client:
        result = client.delete_pool(name)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    print_line(f'Pool "{name}" deleted.')


@autoscaler_app.command("activities")
def activities(
    ctx: typer.Context,
    pool: Annotated[str | None, typer.Option("--pool", help="Only this pool.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    output: OutputOption = None,
    consistent: ConsistentOption = False,
) -> None:
    """What the autoscaler decided, why, its hourly cost and what happened (newest first)."""
    with session(ctx) as client:
        items = client.autoscaler_activities(limit=limit, pool=pool, consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(items)
        return
    if not items:
        print_line("No autoscaler activity.")
        return
    rows = [
        (
            age(a.get("began_at")),
            a.get("pool"),
            a.get("action"),
            a.get("status"),
            f"${float(a.get('hourly_cost') or 0):.4f}/h",
            a.get("reason"),
            a.get("outcome"),
        )
        for a in items
    ]
    print_table(None, ("WHEN", "POOL", "ACTION", "STATUS", "COST", "WHY", "OUTCOME"), rows)


def register(app: typer.Typer) -> None:
    """Add the `pool` and `autoscaler` groups to the top-level app."""
    app.add_typer(pool_app, name="pool")
    app.add_typer(autoscaler_app, name="autoscaler")
