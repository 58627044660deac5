"""Leader-only loops and what they may use of their server.

A loop is a function ``loop(stop: threading.Event) -> None`` that returns soon after ``stop``
is set; :class:`LeaderLoops` starts every loop when this server gains leadership and stops
them when it loses it. Each loop is built by the composition root
(:class:`federation.server.master.Master`) from a
:class:`~federation.ports.LeaderContext`, the one narrow port
through which scheduler, autoscaler, node health, garbage collection and cron dispatch read
the replicated state, commit commands and tell the time. Loops import the port, never the
master, so tests give them any object of that shape (a bare state machine with a clock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from federation.ports import LeaderContext

log = logging.getLogger("federation.leader")

Loop = Callable[[threading.Event], None]

__all__ = ["LeaderContext", "LeaderLoops", "Loop"]


class LeaderLoops:
    def __init__(self) -> None:
        self._loops: list[tuple[str, Loop]] = []
        self._running: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def add(self, name: str, loop: Loop) -> None:
        self._loops.append((name, loop))

    def on_leadership(self, is_leader: bool) -> None:
        if is_leader:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._stop = threading.Event()
            for name, loop in self._loops:
                thread = threading.Thread(
                    target=self._guard, args=(name, loop, self._stop), name=f"leader-{name}",
                    daemon=True,
                )
                thread.start()
                self._running.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop.set()
            for thread in self._running:
                thread.join(timeout)
            self._running = []

    @staticmethod
    def _guard(name: str, loop: Loop, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                loop(stop)
                return
            except Exception:
                log.exception("leader loop %s failed; restarting it in 1s", name)
                stop.wait(1.0)
