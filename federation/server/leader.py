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
import time
from collections.abc import Callable

from federation.ports import LeaderContext

log = logging.getLogger("federation.leader")

Loop = Callable[[threading.Event], None]

__all__ = ["LeaderContext", "LeaderLoops", "Loop"]


class LeaderLoops:
    """Starts every loop when this server gains leadership, stops them when it loses it.

    Before a new term's loops start, the previous term's loops have ended (a loop that
    outlived ``stop``'s join timeout is waited for: two scheduler passes at once would both
    place the same work), and ``catch_up(stop)``, when given, has returned True (it is tried
    again until then, or until leadership is lost). A new Raft leader has not necessarily
    applied every entry its predecessor committed: it learns they are committed only when an
    entry of its own term is. A scheduler pass over that older state would place again what
    an applied-later plan already placed, so the master passes a read barrier (a replicated
    no-op) here.
    """

    def __init__(self, catch_up: Callable[[threading.Event], bool] | None = None) -> None:
        self._loops: list[tuple[str, Loop]] = []
        self._running: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._catch_up = catch_up
        self._lingering: list[threading.Thread] = []  # stopped, not ended when last joined

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
            self._stop = stop = threading.Event()
            gate = threading.Thread(target=self._gated, args=(stop,), name="leader-catch-up",
                                    daemon=True)
            self._running.append(gate)
            gate.start()

    def _gated(self, stop: threading.Event) -> None:
        with self._lock:
            lingering = [t for t in self._lingering if t.is_alive()]
            self._lingering = lingering
        for thread in lingering:
            log.warning("%s of the previous term still running: waiting for it to end",
                        thread.name)
            while thread.is_alive() and not stop.is_set():
                thread.join(0.5)
        while self._catch_up is not None and not stop.is_set():
            try:
                if self._catch_up(stop):
                    break
            except Exception:  # noqa: BLE001 - tried again while this server leads
                log.exception("catching up with the log before leading failed")
            stop.wait(0.1)
        with self._lock:
            if not stop.is_set():
                self._start_loops(stop)

    def _start_loops(self, stop: threading.Event) -> None:
        for name, loop in self._loops:
            thread = threading.Thread(
                target=self._guard, args=(name, loop, stop), name=f"leader-{name}",
                daemon=True,
            )
            thread.start()
            self._running.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop.set()
            running, self._running = self._running, []
        # Joined outside the lock: the catch-up thread takes it to start the loops.
        deadline = time.monotonic() + timeout
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._lingering += [t for t in running if t.is_alive()]

    @staticmethod
    def _guard(name: str, loop: Loop, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                loop(stop)
                return
            except Exception:
                log.exception("leader loop %s failed; restarting it in 1s", name)
                stop.wait(1.0)
