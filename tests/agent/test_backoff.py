"""Replacing a failing service backs off: each replacement of a copy that failed its health
check waits twice as long as the one before (up to ``reschedule.max_delay``), and the job
says ``degraded`` meanwhile; a healthy service says ``running``. A real master, a real
agent and the real CLI."""

from __future__ import annotations

import sys
import time

from typer.testing import CliRunner

from federation.cli.main import app
from tests.agent.conftest import API_TOKEN, Fed
from tests.harness import wait_for

# Listens on its port; the check below asks a command that always fails (or succeeds).
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def service(job_id: str, check: list[str]) -> dict:
    return {"id": job_id, "type": "service", "groups": [{
        "name": "web", "count": 1, "resources": {"cpu": 100, "memory": 128},
        "restart": {"attempts": 0, "delay": "0s"},
        "reschedule": {"delay": "1s", "max_delay": "8s"},
        "task": {"command": SLEEPER, "kill_timeout": "1s",
                 "health": {"type": "command", "command": check, "interval": "200ms",
                            "grace": "0s", "failures": 1}}}]}


def cli(fed: Fed, *args: str):
    return CliRunner().invoke(app, list(args), env={
        "FEDERATION_ADDR": fed.url, "FEDERATION_TOKEN": API_TOKEN, "FEDERATION_TIMEOUT": "10"})


def test_a_service_failing_its_check_is_replaced_ever_more_slowly_and_is_degraded(
        fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("ailing", ["false"]))
    seen: dict[str, float] = {}  # allocation id -> when it was first seen
    statuses: set[str] = set()  # the job's, once its first copy failed
    deadline = time.monotonic() + 40
    while len(seen) < 4 and time.monotonic() < deadline:
        for alloc in fed.allocs("ailing"):
            seen.setdefault(alloc["id"], time.monotonic())
        status = fed.http.get("/v1/jobs/ailing").json()["status"]
        if any(a["client_status"] == "failed" for a in fed.allocs("ailing")):
            statuses.add(status)
        time.sleep(0.05)
    assert len(seen) >= 4, f"only {len(seen)} copies in 40 s"
    first_seen = sorted(seen.values())[:4]
    gaps = [b - a for a, b in zip(first_seen, first_seen[1:], strict=False)]
    # Delays of 1, 2 and 4 s (plus the same start-and-fail time each round).
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[2] - gaps[0] > 2.0, gaps
    streaks = [a.get("failure_streak", 0) for a in fed.allocs("ailing")][:4]
    assert streaks == [0, 1, 2, 3]
    # Stopped for the failed check, even at once after starting: failed, never lost.
    for failed in fed.allocs("ailing")[:3]:
        assert failed["client_status"] == "failed", failed
        assert "unhealthy" in failed["message"]
    assert statuses == {"degraded"}, statuses

    shown = cli(fed, "job", "status", "ailing")
    assert shown.exit_code == 0, shown.output
    assert "degraded" in shown.stdout
    # The fourth copy fails too and waits 8 s: job status lists it, with the time left.
    waiting = wait_for(lambda: (out := cli(fed, "job", "status", "ailing").stdout)
                       and "Waiting to be replaced" in out and out, 15, "a copy waiting")
    assert " 8s " in waiting


def test_a_healthy_service_is_running(fed: Fed, agents) -> None:
    agents("a1")
    fed.run(service("fine", ["true"]))
    wait_for(lambda: fed.http.get("/v1/jobs/fine").json()["status"] == "running", 30,
             "a running job")
    (alloc,) = fed.wait_allocs("fine", 1, "running")
    wait_for(lambda: fed.alloc(alloc["id"]).get("healthy") is True, 15, "a healthy copy")
    assert fed.http.get("/v1/jobs/fine").json()["status"] == "running"
    assert len(fed.allocs("fine")) == 1
    shown = cli(fed, "job", "status", "fine")
    assert "running" in shown.stdout and "degraded" not in shown.stdout
