"""Entry point of the `federation` command: global options and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from federation.cli import acl as acl_cmds
from federation.cli import agent as agent_cmds
from federation.cli import allocs as alloc_cmds
from federation.cli import clusters as cluster_cmds
from federation.cli import events as event_cmds
from federation.cli import jobs as job_cmds
from federation.cli import kubeconfig as kubeconfig_cmds
from federation.cli import nodes as node_cmds
from federation.cli import pools as pool_cmds
from federation.cli import queues as queue_cmds
from federation.cli import server as server_cmds
from federation.cli import simulate as simulate_cmds
from federation.cli import snapshot as snapshot_cmds
from federation.cli import status as status_cmds
from federation.cli import tls as tls_cmds
from federation.cli.common import Output, Settings
from federation.client import DEFAULT_ADDRESS

app = typer.Typer(
    name="federation",
    help="One control plane for on-prem racks and cloud instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion and --show-completion for bash, zsh, fish
)


@app.callback()
def global_options(
    ctx: typer.Context,
    address: Annotated[
        str,
        typer.Option(
            "--address",
            envvar="FEDERATION_ADDR",
            help="Server URL(s), comma-separated; any server of the cluster will do.",
        ),
    ] = DEFAULT_ADDRESS,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="FEDERATION_TOKEN",
            help="API token (sent as a Bearer token).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Output,
        typer.Option("--output", "-o", case_sensitive=False, help="Output format."),
    ] = Output.table,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="FEDERATION_TIMEOUT",
            min=0.1,
            help="Give up on a request after this many seconds, retries included.",
        ),
    ] = 30.0,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar="FEDERATION_NAMESPACE",
            help="Namespace of the jobs a command works on (default: default; * for all "
            "on listings).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """One control plane for on-prem racks and cloud instances."""
    ctx.obj = Settings(address=address, token=token, output=output, timeout=timeout,
                       namespace=namespace)


server_cmds.register(app)
status_cmds.register(app)
job_cmds.register(app)
node_cmds.register(app)
alloc_cmds.register(app)
snapshot_cmds.register(app)
queue_cmds.register(app)
simulate_cmds.register(app)
agent_cmds.register(app)
pool_cmds.register(app)
acl_cmds.register(app)
tls_cmds.register(app)
kubeconfig_cmds.register(app)
event_cmds.register(app)
cluster_cmds.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
