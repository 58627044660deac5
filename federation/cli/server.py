"""`federation server` and `federation dev`: run masters."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the server commands to the top-level app."""
    return None
