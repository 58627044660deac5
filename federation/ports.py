"""The narrow port through which leader-only loops use the server they run on.

Scheduler, autoscaler, node health, garbage collection and cron dispatch take a
:class:`LeaderContext`: they read the replicated state, commit commands and tell the time
through it, and import nothing of the server (the master is the composition root that
builds them). A leaf module: it imports nothing of the project at run time.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from federation.state.machine import StateMachine


class LeaderContext(Protocol):
    """What a leader loop may use of the server it runs on."""

    @property
    def machine(self) -> StateMachine:
        """The replicated state as this server has applied it (read, never written)."""
        ...

    @property
    def changed(self) -> threading.Condition:
        """Notified after every applied change (loops wait on it instead of polling)."""
        ...

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        """Commit one command through Raft and wait: the state machine's raw result."""
        ...

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queue a command without waiting (loops that pipeline their commits)."""
        ...

    def now(self) -> float:
        """Wall-clock seconds (the time commands carry and deadlines are compared to)."""
        ...
