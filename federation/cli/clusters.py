"""`federation cluster ...`: member Kubernetes clusters whose nodes join the pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from federation.cli.common import (
    ConsistentOption,
    Output,
    OutputOption,
    fail,
    output_format,
    print_json,
    print_line,
    print_listing,
    session,
)

cluster_app = typer.Typer(help="Member Kubernetes clusters: their nodes join the pool.",
                          no_args_is_help=True)


def parse_labels(text: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--labels: {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


@cluster_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cluster name (a DNS-1123 label).")],
    kubeconfig: Annotated[str, typer.Option("--kubeconfig", help="The member's kubeconfig.")],
    context: Annotated[str | None, typer.Option(
        "--context", help="Context to use (default: its current-context).")] = None,
    pool: Annotated[str | None, typer.Option(
        "--pool", help="Pool its nodes join (default: the cluster's name).")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="k=v,... added to every node of the cluster.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Image for exec-driver tasks (default busybox:1.36).")] = None,
    output: OutputOption = None,
) -> None:
    """Add (or replace) a member cluster. The kubeconfig is stored sealed, never shown."""
    try:
        text = Path(kubeconfig).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {kubeconfig}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"cannot read {kubeconfig}: not a UTF-8 text file")
    with session(ctx) as client:
        result = client.add_cluster(name, text, context=context, pool=pool,
                                    labels=parse_labels(labels), image=image)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    verb = "added" if result.get("version") == 1 else (
        "updated" if result.get("changed") else "unchanged")
    print_line(f'Cluster "{name}" {verb} ({result.get("server")}, context '
               f'{result.get("context")}, pool {result.get("pool")}).')


@cluster_app.command("list")
def list_clusters(
    ctx: typer.Context, output: OutputOption = None, consistent: ConsistentOption = False
) -> None:
    """List member clusters with their ready and down nodes."""
    with session(ctx) as client:
        clusters = client.list_clusters(consistent=consistent)
    print_listing(
        ctx, output, clusters, "member clusters",
        ("NAME", "SERVER", "CONTEXT", "POOL", "READY", "DOWN"),
        lambda c: (c.get("name"), c.get("server"), c.get("context"), c.get("pool"),
                   (c.get("nodes") or {}).get("ready", 0),
                   (c.get("nodes") or {}).get("down", 0)))


@cluster_app.command("remove")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    output: OutputOption = None,
) -> None:
    """Remove a member cluster: its nodes leave the pool, their work is placed elsewhere."""
    with session(ctx) as client:
        result = client.remove_cluster(name)
    if output_format(ctx, output) is Output.json:
        print_json(result)
        return
    print_line(f'Cluster "{name}" removed ({result.get("nodes_down", 0)} nodes down, '
               f'{result.get("lost", 0)} allocations to place again).')


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")
