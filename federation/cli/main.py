"""Entry point of the `federation` command: global options and the command groups."""

from __future__ import annotations

import typer

from federation.cli import server as server_cmds

app = typer.Typer(
    name="federation",
    help="One control plane for on-prem racks and cloud instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

server_cmds.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
