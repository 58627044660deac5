"""`federation tls`: a private CA and certificates for servers, agents and CLI users."""

from __future__ import annotations

from pathlib import Path

import typer

from federation import tls

tls_app = typer.Typer(help="TLS certificates for the cluster.", no_args_is_help=True)
ca_app = typer.Typer(help="The cluster's certificate authority.", no_args_is_help=True)
cert_app = typer.Typer(help="Role certificates signed by the CA.", no_args_is_help=True)
tls_app.add_typer(ca_app, name="ca")
tls_app.add_typer(cert_app, name="cert")


@ca_app.command("create")
def ca_create(
    out: Path = typer.Option(Path("."), "--out", help="directory to write into"),
    days: int = typer.Option(1825, "--days", min=1),
) -> None:
    """Write federation-ca.pem and federation-ca-key.pem (0600; keep it offline)."""
    if (out / "federation-ca-key.pem").exists():
        typer.echo(f"Error: {out / 'federation-ca-key.pem'} exists: refusing to replace it",
                   err=True)
        raise typer.Exit(2)
    issued = tls.create_ca(out, days=days)
    typer.echo(f"==> CA certificate: {issued.cert_path}")
    typer.echo(f"==> CA key (secret): {issued.key_path}")


@cert_app.command("create")
def cert_create(
    server: bool = typer.Option(False, "--server", help="a server certificate"),
    agent: bool = typer.Option(False, "--agent", help="an agent certificate"),
    cli: bool = typer.Option(False, "--cli", help="a CLI (client) certificate"),
    region: str = typer.Option(tls.DEFAULT_REGION, "--region"),
    ca: Path = typer.Option(Path("federation-ca.pem"), "--ca"),
    key: Path = typer.Option(Path("federation-ca-key.pem"), "--key"),
    out: Path = typer.Option(Path("."), "--out"),
    days: int = typer.Option(365, "--days", min=1),
    dns: list[str] = typer.Option(None, "--additional-dnsname"),
    ip: list[str] = typer.Option(None, "--additional-ipaddress"),
) -> None:
    """Write <region>-<role>-federation.pem and its key (0600)."""
    roles = [name for name, chosen in (("server", server), ("agent", agent), ("cli", cli))
             if chosen]
    if len(roles) != 1:
        typer.echo("Error: give exactly one of --server, --agent, --cli", err=True)
        raise typer.Exit(2)
    try:
        issued = tls.create_cert(roles[0], region, tls.Issued(ca, key), out, days=days,
                                 dns_names=tuple(dns or ()), ip_addresses=tuple(ip or ()))
    except (OSError, ValueError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"==> {roles[0]} certificate for {tls.role_name(roles[0], region)}: "
               f"{issued.cert_path}")
    typer.echo(f"==> key (secret): {issued.key_path}")


def register(app: typer.Typer) -> None:
    app.add_typer(tls_app, name="tls")
