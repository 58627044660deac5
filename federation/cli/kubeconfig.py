"""`federation kubeconfig`: a kubeconfig for the servers' Kubernetes endpoint."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml

from federation.cli.common import settings
from federation.client import _split_addresses
from federation.specs.namespace import DEFAULT_NAMESPACE, is_namespace

KUBE_PREFIX = "/k8s"


def kubeconfig_document(address: str, token: str | None, namespace: str) -> dict[str, Any]:
    """The kubeconfig: one cluster (the server's ``/k8s`` endpoint), one user (the token),
    one context in ``namespace``."""
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "federation",
                      "cluster": {"server": address.rstrip("/") + KUBE_PREFIX}}],
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
) -> None:
    """Print a kubeconfig for kubectl: cluster = the servers' Kubernetes endpoint (/k8s),
    user = your token, context namespace = NS."""
    opts = settings(ctx)
    chosen = namespace or opts.namespace or DEFAULT_NAMESPACE
    if not is_namespace(chosen):
        typer.echo(f"Error: namespace {chosen!r} must be a DNS-1123 label", err=True)
        raise typer.Exit(1)
    address = _split_addresses(opts.address)[0]
    if opts.token and address.startswith("http://"):
        # kubectl (client-go) attaches bearer tokens to https connections only.
        typer.echo("Note: kubectl sends the token over https only; this server address is "
                   "http, so requests will be anonymous.", err=True)
    typer.echo(yaml.safe_dump(kubeconfig_document(address, opts.token, chosen),
                              sort_keys=False), nl=False)


def register(app: typer.Typer) -> None:
    app.command("kubeconfig")(kubeconfig)
