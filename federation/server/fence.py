"""The leader loops' view of their server: every command they commit carries its claim.

A leader's loops decide from its view of the state. When it is deposed without noticing
yet (frozen, starved of CPU), what its loops submit meanwhile waits in its Raft queue, and
once it finds itself a follower it forwards that to the new leader, which would commit a
decision made from an outdated view: a second plan for work the new leader has just placed.
So a server that gains leadership first commits a ``leader.claim`` (see
``federation.state.machine``), and its loops' commands carry that claim: the state machine
refuses one whose claim is no longer the latest.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from federation.server.master import Master
    from federation.state.machine import StateMachine


class Fenced:
    """A :class:`~federation.ports.LeaderContext` over ``master`` whose commits carry the
    claim this server made when it last gained leadership."""

    def __init__(self, master: Master) -> None:
        self._master = master

    @property
    def machine(self) -> StateMachine:
        return self._master.machine

    @property
    def changed(self) -> threading.Condition:
        return self._master.changed

    def now(self) -> float:
        return self._master.now()

    def commit_sync(self, command: dict[str, Any]) -> dict[str, Any]:
        return self._master.commit_sync(self._stamped(command))

    def submit(self, command: dict[str, Any]) -> Future[dict[str, Any]]:
        return self._master.submit(self._stamped(command))

    def _stamped(self, command: dict[str, Any]) -> dict[str, Any]:
        claim = self._master.leader_claim
        if claim is not None:
            command["claim"] = claim
        return command
