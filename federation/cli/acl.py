"""`federation acl`: bootstrap, policies and tokens."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer

from federation.cli.common import (
    Output,
    OutputOption,
    fail,
    output_format,
    print_fields,
    print_json,
    print_line,
    print_listing,
    session,
)

acl_app = typer.Typer(help="Access control: policies and tokens.", no_args_is_help=True)
policy_app = typer.Typer(help="ACL policies (HCL, YAML or JSON).", no_args_is_help=True)
token_app = typer.Typer(help="ACL tokens.", no_args_is_help=True)
acl_app.add_typer(policy_app, name="policy")
acl_app.add_typer(token_app, name="token")


def _expires(value: float | None) -> str:
    if value is None:
        return "never"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _show_token(ctx: typer.Context, output: Output | None, token: dict) -> None:
    if output_format(ctx, output) is Output.json:
        print_json(token)
        return
    pairs = [("Accessor ID", token.get("accessor_id")), ("Name", token.get("name")),
             ("Type", token.get("type")), ("Policies", ", ".join(token.get("policies") or [])),
             ("Expires", _expires(token.get("expiration_time")))]
    if token.get("secret_id"):
        pairs.insert(1, ("Secret ID", token["secret_id"]))
    print_fields(pairs)
    if token.get("secret_id"):
        print_line("The secret is shown this once: keep it now.")


@acl_app.command("bootstrap")
def bootstrap(ctx: typer.Context, output: OutputOption = None) -> None:
    """Create the first management token (once per cluster)."""
    with session(ctx) as client:
        token = client.acl_bootstrap()
    _show_token(ctx, output, token)


@policy_app.command("apply")
def policy_apply(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="policy name")],
    file: Annotated[Path, typer.Argument(help="rules: HCL, YAML or JSON (- for stdin)")],
    description: str = typer.Option("", "--description"),
) -> None:
    """Create or replace a policy from a rules file."""
    import sys

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    with session(ctx) as client:
        result = client.apply_acl_policy(name, text, description)
    print_line(f'Policy "{name}" {"applied" if result.get("changed", True) else "unchanged"}.')


@policy_app.command("list")
def policy_list(ctx: typer.Context, output: OutputOption = None) -> None:
    with session(ctx) as client:
        policies = client.acl_policies()
    print_listing(ctx, output, policies, "policies", ("NAME", "DESCRIPTION", "RULES"),
                  lambda p: (p["name"], p.get("description") or "-",
                             ", ".join(sorted(k for k, v in p["rules"].items() if v))))


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    with session(ctx) as client:
        client.delete_acl_policy(name)
    print_line(f'Policy "{name}" deleted.')


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="what the token is for"),
    policy: list[str] = typer.Option(None, "--policy", help="policy name (repeatable)"),
    type: str = typer.Option("client", "--type", help="client | management"),
    ttl: str | None = typer.Option(None, "--ttl", help="lifetime, e.g. 24h"),
    output: OutputOption = None,
) -> None:
    """Create a token; its secret is printed this once."""
    with session(ctx) as client:
        token = client.create_acl_token(name, policy or [], type=type, ttl=ttl)
    _show_token(ctx, output, token)


@token_app.command("list")
def token_list(ctx: typer.Context, output: OutputOption = None) -> None:
    with session(ctx) as client:
        tokens = client.acl_tokens()
    print_listing(ctx, output, tokens, "tokens",
                  ("ACCESSOR", "NAME", "TYPE", "POLICIES", "EXPIRES"),
                  lambda t: (t["accessor_id"], t["name"], t["type"],
                             ", ".join(t.get("policies") or []) or "-",
                             _expires(t.get("expiration_time"))))


@token_app.command("delete")
def token_delete(ctx: typer.Context, accessor: Annotated[str, typer.Argument()]) -> None:
    """Delete a token: it stops working on every server once the deletion is applied."""
    with session(ctx) as client:
        client.delete_acl_token(accessor)
    print_line(f"Token {accessor} deleted.")


@token_app.command("self")
def token_self(ctx: typer.Context, output: OutputOption = None) -> None:
    """The token this command runs with (never its secret)."""
    with session(ctx) as client:
        token = client.acl_token_self()
    _show_token(ctx, output, token)


def register(app: typer.Typer) -> None:
    app.add_typer(acl_app, name="acl")
