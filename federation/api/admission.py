"""Admission: a saturated server still answers heartbeats at once.

One asyncio loop serves every request of a server. asyncio runs whatever is ready in arrival
order, one step of each per turn of the loop, so the length of a turn is the work of
everything that became ready together: a plan that changes a thousand nodes' work lists
wakes a thousand blocking queries at once, and a heartbeat that arrives behind them waits
for all their answers (at 1,000 nodes during a batch, heartbeats waited up to 27 s, longer
than the TTL, and nodes that were beating were marked down).

Requests are of two kinds, as in Kubernetes' API priority and fairness with one exempt
level:

- **liveness** (heartbeats, relayed heartbeat batches, the health check): never queued;
- **everything else**: at most ``per_turn`` such requests start, or resume after waiting on
  something outside the loop (a Raft commit, a blocking query's change), per turn of the
  loop; the others wait in arrival order and cost nothing while they wait.

Nothing is held across a wait, so a long poll, a stream or a group commit is never limited
by this: only how much work one turn of the loop may take on at once. The total work is the
same; what changes is that a turn stays short and liveness is served in every turn.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from federation.server import relay
from federation.server.config import DEFAULT_REQUESTS_PER_TURN

_LIVENESS = re.compile(r"^/v1/nodes/[^/]+/heartbeat$")
_EXEMPT_PATHS = frozenset({"/v1/health", relay.PATH})

# Whether the request running in this context is paced (set by the middleware): waits in
# ``TurnBudget.readmit`` apply only to those.
_PACED: contextvars.ContextVar[bool] = contextvars.ContextVar("federation_paced", default=False)


def is_liveness(method: str, path: str) -> bool:
    """Requests that keep nodes alive and servers probed: never queued."""
    if path in _EXEMPT_PATHS:
        return True
    return method == "POST" and _LIVENESS.match(path) is not None


class TurnBudget:
    """At most ``per_turn`` admissions per turn of the running loop, the rest in order.

    Bound to the loop it is first used on (each server has one); every method runs on it."""

    def __init__(self, per_turn: int = DEFAULT_REQUESTS_PER_TURN) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self.per_turn = per_turn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._used = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._armed = False
        self.queued = 0  # admissions that had to wait for a later turn (metrics, tests)

    async def admit(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._used, self._queue, self._armed = loop, 0, deque(), False
        if not self._queue and self._used < self.per_turn:
            self._used += 1
            self._arm()
            return
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(future)
        self.queued += 1
        self._arm()
        try:
            await future
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()  # skipped when its turn comes
            raise

    async def readmit(self) -> None:
        """After a wait outside the loop: queue again if the current request is paced."""
        if _PACED.get():
            await self.admit()

    def _arm(self) -> None:
        if not self._armed and self._loop is not None:
            self._armed = True
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        # Runs once per turn while there is anything to pace. The futures resolved here
        # resume their requests in the next turn: they are that turn's admissions.
        self._armed = False
        self._used = 0
        while self._queue and self._used < self.per_turn:
            future = self._queue.popleft()
            if future.done():
                continue
            future.set_result(None)
            self._used += 1
        if self._queue or self._used:
            self._arm()


class AdmissionGate:
    """Pure ASGI middleware: liveness passes, everything else is paced by ``budget``."""

    def __init__(self, app: Callable[..., Any], budget: TurnBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or is_liveness(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.budget.admit()
        token = _PACED.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _PACED.reset(token)
