"""`federation status`: the servers of the cluster, their roles, the leader, term and index."""

from __future__ import annotations

import typer

from federation.cli.common import (
    ConsistentOption,
    Output,
    OutputOption,
    output_format,
    print_json,
    print_line,
    print_table,
    session,
)


def status(
    ctx: typer.Context, output: OutputOption = None, consistent: ConsistentOption = False
) -> None:
    """Show the servers, their roles, the leader, the term and the commit index."""
    with session(ctx) as client:
        info = client.status(consistent=consistent)
    if output_format(ctx, output) is Output.json:
        print_json(info)
        return
    leader = info.get("leader")
    print_line(
        f"Leader: {leader or 'none (no leader elected)'}   Term: {info.get('term', '-')}   "
        f"Commit index: {info.get('commit_index', '-')}   Answered by: {info.get('self', '-')}"
    )
    rows = []
    for server in info.get("servers", []):
        role = server.get("role", "-")
        if leader and server.get("id") == leader and role != "leader":
            role = f"{role} (leader)"
        rows.append((server.get("id"), role, server.get("http"), server.get("raft")))
    print_table(None, ("ID", "ROLE", "HTTP", "RAFT"), rows)


def register(app: typer.Typer) -> None:
    """Add `status` to the top-level app."""
    app.command("status")(status)
