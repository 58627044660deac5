"""An undo journal for the state machine's tables, so a rejected command changes nothing.

Every table of :class:`~federation.state.machine.StateMachine` is a :class:`Table`: a plain
dict whose writes (``t[k] = v``, ``del t[k]``, ``pop``) are journaled while a command is being
applied. If the command then fails, in any way, the machine undoes the journal in reverse
order, and the state is what it was before, whatever the handler had written by then. Reads
are the dict's own (C speed); a write costs one list append.
"""

from __future__ import annotations

from typing import Any

_MISSING: Any = object()


class Journal:
    """The writes of the command being applied: ``(table, key, previous value or _MISSING)``."""

    __slots__ = ("active", "entries")

    def __init__(self) -> None:
        self.active = False
        self.entries: list[tuple[Table, Any, Any]] = []

    def begin(self) -> None:
        self.entries.clear()
        self.active = True

    def end(self) -> list[tuple[Table, Any, Any]]:
        """Stop journaling; returns what was written (newest last)."""
        self.active = False
        entries, self.entries = self.entries, []
        return entries


class Table(dict):  # type: ignore[type-arg]
    """A dict whose writes are journaled while its journal is active."""

    __slots__ = ("journal",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal: Journal | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        journal = self.journal
        if journal is not None and journal.active:
            journal.entries.append((self, key, dict.get(self, key, _MISSING)))
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        journal = self.journal
        if journal is not None and journal.active:
            journal.entries.append((self, key, dict.__getitem__(self, key)))
        dict.__delitem__(self, key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            value = dict.__getitem__(self, key)
            del self[key]
            return value
        return dict.pop(self, key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def popitem(self) -> tuple[Any, Any]:  # pragma: no cover - the machine never uses it
        raise TypeError("a journaled table does not support popitem")

    def clear(self) -> None:  # pragma: no cover - the machine never uses it
        raise TypeError("a journaled table does not support clear")

    def restore(self, key: Any, previous: Any) -> None:
        """Put back one journaled value (not journaled itself)."""
        if previous is _MISSING:
            dict.pop(self, key, None)
        else:
            dict.__setitem__(self, key, previous)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (Raft snapshots, journals) as its items only: the journal is local.
        return (Table, (dict(self),))

    def __copy__(self) -> Table:
        return Table(self)


def is_missing(value: Any) -> bool:
    return value is _MISSING
