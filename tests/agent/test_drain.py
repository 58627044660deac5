"""Draining a node moves its services without a moment at zero healthy instances."""

from __future__ import annotations

import threading
import time

from tests.agent.conftest import Fed
from tests.agent.test_services import web
from tests.harness import wait_for


def test_drain_moves_a_service_without_a_moment_at_zero_healthy(fed: Fed, agents) -> None:
    old = agents("old")
    old_id = old.node_id
    fed.run(web("drained", count=2))
    first = fed.wait_allocs("drained", 2, "running")
    wait_for(lambda: all(fed.alloc(a["id"]).get("healthy") is True for a in first), 20,
             "healthy on the first node")
    new = agents("new")
    new_id = new.node_id

    def healthy() -> list[dict]:
        return [a for a in fed.allocs("drained") if a["desired_status"] == "run"
                and a["client_status"] == "running" and a.get("healthy") is True]

    lowest = [2]
    watching = threading.Event()
    watching.set()

    def watch() -> None:
        while watching.is_set():
            lowest[0] = min(lowest[0], len(healthy()))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        answer = fed.http.post(f"/v1/nodes/{old_id}/drain")
        assert answer.status_code == 200 and answer.json()["draining"] is True
        wait_for(lambda: len(healthy()) == 2 and all(a["node_id"] == new_id
                                                      for a in healthy()), 40,
                 "both instances healthy on the new node")
        wait_for(lambda: all(fed.alloc(a["id"])["client_status"] != "running" for a in first),
                 20, "the old instances stopped")
    finally:
        watching.clear()
        watcher.join(5)
    assert lowest[0] >= 1, "there was a moment without a healthy instance"
