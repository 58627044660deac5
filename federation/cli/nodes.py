"""`federation node ...`: the pool of nodes running agents."""

from __future__ import annotations

from typing import Annotated

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
    session,
    used_of,
)
from federation.client import Client, Node
from federation.errors import NotFound

node_app = typer.Typer(help="Nodes: the pool that runs the work.", no_args_is_help=True)


def node_state(node: Node) -> str:
    state = str(node.get("status", "-"))
    return f"{state}, draining" if node.get("draining") else state


@node_app.command("list")
def list_nodes(
    ctx: typer.Context, output: OutputOption = None, consistent: ConsistentOption = False
) -> None:
    """List nodes with their status, place and how much of them is allocated."""
    with session(ctx) as client:
        nodes = client.list_nodes(consistent=consistent)
    wide = output_format(ctx, output) is Output.wide
    columns = ("ID", "NAME", "POOL", "PROVIDER", "ZONE", "STATUS", "CPU", "MEMORY", "HEARTBEAT")

    def row(n: Node) -> tuple:
        # Names identify nodes; a short id prefix (any node command takes one) is enough.
        node_id = str(n.get("id", ""))
        cells = (node_id if wide else node_id[:8], n.get("name"), n.get("pool"),
                 n.get("provider"), n.get("zone"), node_state(n),
                 used_of(n.get("allocated"), n.get("capacity"), "cpu_milli", "m"),
                 used_of(n.get("allocated"), n.get("capacity"), "memory_mib", " MiB"),
                 age(n.get("last_heartbeat")))
        if not wide:
            return cells
        return (*cells, n.get("region"), n.get("instance_type"),
                used_of(n.get("allocated"), n.get("capacity"), "gpu", ""))

    print_listing(ctx, output, nodes, "nodes",
                  (*columns, "REGION", "INSTANCE TYPE", "GPU") if wide else columns, row)


def resolve_node(client: Client, ref: str) -> str:
    """A node id from an id, a unique id prefix or a unique name."""
    nodes = client.list_nodes()
    for node in nodes:
        if node.get("id") == ref:
            return ref
    matches = [n for n in nodes if n.get("name") == ref or str(n.get("id", "")).startswith(ref)]
    ids = sorted({str(n.get("id")) for n in matches})
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise NotFound(f'no node with id or name "{ref}"')
    fail(f'"{ref}" matches {len(ids)} nodes ({", ".join(ids)}): give the node id')


@node_app.command("drain")
def drain(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node id, unique id prefix or name.")],
    deadline: Annotated[str | None, typer.Option(
        "--deadline", help="stop batch work still running after this long (e.g. 10m); "
        "without it batch work may finish")] = None,
    output: OutputOption = None,
) -> None:
    """Drain a node: nothing new is placed on it, its services move elsewhere (each
    replacement up before the old copy stops), batch work finishes or, after --deadline, is
    stopped and placed again elsewhere."""
    with session(ctx) as client:
        try:
            drained = client.drain_node(node, deadline=deadline)
        except NotFound:
            drained = client.drain_node(resolve_node(client, node), deadline=deadline)
    if output_format(ctx, output) is Output.json:
        print_json(drained)
        return
    name = drained.get("name")
    label = f'"{name}" ({drained.get("id")})' if name else f'"{drained.get("id", node)}"'
    until = f"; batch work stops after {deadline}" if deadline else ""
    print_line(f"Node {label} is draining: nothing new will be placed on it{until}.")


@node_app.command("undrain")
def undrain(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node id, unique id prefix or name.")],
    output: OutputOption = None,
) -> None:
    """End a drain: the node is eligible for new work again (work that moved away stays
    where it went)."""
    with session(ctx) as client:
        try:
            undrained = client.undrain_node(node)
        except NotFound:
            undrained = client.undrain_node(resolve_node(client, node))
    if output_format(ctx, output) is Output.json:
        print_json(undrained)
        return
    name = undrained.get("name")
    label = f'"{name}" ({undrained.get("id")})' if name else f'"{undrained.get("id", node)}"'
    print_line(f"Node {label} is eligible for new work again.")


def register(app: typer.Typer) -> None:
    """Add the `node` group to the top-level app."""
    app.add_typer(node_app, name="node")
