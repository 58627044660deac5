"""What changed between two versions of a spec, as the field paths users write
(``groups[0].count``). Pure; used by ``job history``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_CHANGES = 50


def changed_fields(old: Any, new: Any, path: str = "") -> list[str]:
    """The paths at which ``new`` differs from ``old`` (a group matched by position), at
    most ``MAX_CHANGES`` of them."""
    out: list[str] = []
    _walk(old, new, path, out)
    return out[:MAX_CHANGES]


def _walk(old: Any, new: Any, path: str, out: list[str]) -> None:
    if len(out) >= MAX_CHANGES or old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _walk(old.get(key), new.get(key), f"{path}.{key}" if path else str(key), out)
        return
    if (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
            and any(isinstance(item, Mapping) for item in old)):
        for i, (before, after) in enumerate(zip(old, new, strict=True)):
            _walk(before, after, f"{path}[{i}]", out)
        return
    out.append(path or "(whole spec)")
