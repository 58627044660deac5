"""A local copy of one kind of object of a member cluster, kept by list + watch (pure).

Events are applied in resourceVersion order and at most once: an event whose object is not
newer than what the copy holds for it (a replay after a resumed watch) is counted as stale
and ignored, a deletion leaves a tombstone so a late replay cannot bring the object back, and
a relist (after a 410) replaces the whole copy.
"""

from __future__ import annotations

from typing import Any


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Mirror:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.resource_version: str | None = None  # None: list before watching
        self.tombstones: dict[str, int] = {}
        self.applied = 0
        self.stale = 0
        self.lists = 0

    def replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.items = {_key(o): o for o in items}
        self.tombstones = {}
        self.resource_version = resource_version
        self.lists += 1

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one ADDED / MODIFIED / DELETED event; False when it changed nothing."""
        obj = event.get("object") or {}
        key, rv = _key(obj), _rv(obj)
        current = self.items.get(key)
        if (current is not None and _rv(current) >= rv) or self.tombstones.get(key, -1) >= rv:
            self.stale += 1
            return False
        if event.get("type") == "DELETED":
            self.items.pop(key, None)
            self.tombstones[key] = rv
            if len(self.tombstones) > 100_000:
                self.tombstones.pop(next(iter(self.tombstones)))
        else:
            self.items[key] = obj
            self.tombstones.pop(key, None)
        self.resource_version = str(rv)
        self.applied += 1
        return True

    def bookmark(self, resource_version: str) -> None:
        self.resource_version = resource_version
