"""Validation of the address an agent registers for its own endpoint (task logs).

Servers connect to that address, so it must not let a caller point them anywhere (SSRF):
it is a scheme, an IP literal and a port, nothing else (the path and query of every call are
fixed by the server), and the IP must be the one the registration came from, or lie in a
network the operator allowed with ``--agent-networks``. Link-local addresses (cloud metadata
services live at 169.254.169.254), multicast and unspecified addresses are always refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from federation.errors import ValidationError

FIELD = "http_address"


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, field=FIELD)


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValidationError(f"not a network: {item!r}", field="--agent-networks") from None
    return networks


def validate_agent_address(
    address: str, peer: str | None,
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
) -> str:
    """The normalised ``scheme://ip:port`` to call, or a ``ValidationError`` naming why not."""
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse("the agent address must be http://IP:PORT or https://IP:PORT")
    if parts.username is not None or parts.password is not None:
        raise _refuse("the agent address must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _refuse("the agent address must not carry a path, query or fragment "
                      "(servers call fixed paths only)")
    if port is None or not 0 < port < 65536:
        raise _refuse("the agent address needs a port")
    try:
        ip = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        raise _refuse("the agent address must be an IP address, not a name") from None
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        raise _refuse(f"{ip} cannot be an agent address")
    source = None
    if peer:
        try:
            source = ipaddress.ip_address(peer)
        except ValueError:
            source = None
    if ip != source and not any(ip in net for net in networks):
        raise _refuse(
            f"the agent address {ip} is neither the address this registration came from "
            f"({peer}) nor in a network allowed by --agent-networks")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{parts.scheme}://{host}:{port}"
