"""`federation kubeconfig`: a kubeconfig for the servers' Kubernetes endpoint."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from federation.cli.common import settings
from federation.specs.namespace import DEFAULT_NAMESPACE, is_namespace
from federation.transport import split_addresses as _split_addresses

KUBE_PREFIX = "/k8s"


def kubeconfig_document(address: str, token: str | None, namespace: str,
                        ca_pem: bytes | None = None) -> dict[str, Any]:
    """The kubeconfig: one cluster (the server's ``/k8s`` endpoint, trusting ``ca_pem`` when
    given), one user (the token), one context in ``namespace``."""
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": address.rstrip("/") + KUBE_PREFIX}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "federation", "cluster": cluster}],
        "users": [{"name": "federation", "user": user}],
        "contexts": [{"name": "federation", "context": {
            "cluster": "federation", "user": "federation", "namespace": namespace}}],
        "current-context": "federation",
    }


def kubeconfig(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="The context's namespace (default: the global -n, else "
        "default).", show_default=False)] = None,
    ca: Annotated[Path | None, typer.Option(
        "--ca", help="The CA certificate (PEM) of an https server, embedded in the kubeconfig "
        "(default: $FEDERATION_CACERT).", show_default=False)] = None,
) -> None:
    """Print a kubeconfig for kubectl: cluster = the servers' Kubernetes endpoint (/k8s),
    user = your token, context namespace = NS."""
    opts = settings(ctx)
    chosen = namespace or opts.namespace or DEFAULT_NAMESPACE
    if not is_namespace(chosen):
        typer.echo(f"Error: namespace {chosen!r} must be a DNS-1123 label", err=True)
        raise typer.Exit(1)
    address = _split_addresses(opts.address)[0]
    ca_path = ca or (Path(os.environ["FEDERATION_CACERT"])
                     if os.environ.get("FEDERATION_CACERT") else None)
    ca_pem = None
    if ca_path is not None and address.startswith("https://"):
        try:
            ca_pem = ca_path.read_bytes()
        except OSError as exc:
            typer.echo(f"Error: cannot read the CA certificate {ca_path}: {exc.strerror}",
                       err=True)
            raise typer.Exit(1) from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            typer.echo(f"Error: {ca_path} is not a PEM certificate", err=True)
            raise typer.Exit(1)
    if opts.token and address.startswith("http://"):
        # kubectl (client-go) attaches bearer tokens to https connections only.
        typer.echo("Note: kubectl sends the token over https only; this server address is "
                   "http, so requests will be anonymous.", err=True)
    typer.echo(yaml.safe_dump(kubeconfig_document(address, opts.token, chosen, ca_pem),
                              sort_keys=False), nl=False)


def register(app: typer.Typer) -> None:
    app.command("kubeconfig")(kubeconfig)
