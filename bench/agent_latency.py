"""Agents under load: submit -> running latency of 200 tasks on 2 agents, the status and
heartbeat traffic while they run, and an idle agent's CPU and memory.

A 3-server cluster (real processes) and two real agents on this machine. One batch job of
200 tasks (each sleeps 60 s) is submitted; for each allocation, latency is the time from the
submission to the moment the servers see it ``running``. Usage: ``python bench/agent_latency.py
[--tasks 200]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cluster, machine, median, percentile, stop_all  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _requests(log: Path) -> dict[str, int]:
    """Requests the agent made, by kind, counted from its request log lines."""
    counts = {"heartbeat": 0, "status": 0, "watch": 0}
    for line in log.read_text(errors="replace").splitlines():
        if "HTTP Request: POST" in line and "/heartbeat " in line:
            counts["heartbeat"] += 1
        elif "HTTP Request: POST" in line and '/allocations "' in line:
            counts["status"] += 1
        elif "HTTP Request: GET" in line and "/allocations?index=" in line:
            counts["watch"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    c = cluster().start()
    root = Path(tempfile.mkdtemp(prefix="federation-agent-bench-"))
    agents: list[subprocess.Popen[bytes]] = []
    try:
        c.wait_leader()
        urls = ",".join(c.urls)
        for n in (1, 2):
            log = open(root / f"agent-{n}.log", "ab")  # noqa: SIM115
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "federation.cli.main", "agent", "--server", urls,
                 "--data-dir", str(root / f"agent-{n}"), "--name", f"bench-{n}",
                 "--cpu", "100000", "--memory", "100000", "--stop-tasks-on-exit"],
                stdout=log, stderr=log))
            log.close()
        http = httpx.Client(base_url=c.urls[0], timeout=30)
        deadline = time.monotonic() + 30
        while len([n for n in http.get("/v1/nodes").json() if n["status"] == "ready"]) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("the agents did not register")
            time.sleep(0.2)
        time.sleep(3)  # settle, then measure an idle agent
        pid = agents[0].pid
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(10)
        idle_cpu = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
        idle_rss = _rss_mib(pid)

        spec = {"id": "bench", "type": "batch", "groups": [{
            "name": "sleep", "count": args.tasks, "resources": {"cpu": 10, "memory": 32},
            "task": {"command": ["sleep", "60"]}}]}
        submitted = time.time()
        http.post("/v1/jobs", json=spec).raise_for_status()
        first_seen: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(first_seen) < args.tasks and time.monotonic() < deadline:
            now = time.time()
            for alloc in http.get("/v1/allocations", params={"job": "bench"}).json():
                if alloc["client_status"] == "running" and alloc["id"] not in first_seen:
                    first_seen[alloc["id"]] = now
            time.sleep(0.05)
        latencies = [t - submitted for t in first_seen.values()]
        logs = [root / "agent-1.log", root / "agent-2.log"]
        before = [_requests(p) for p in logs]
        time.sleep(10)
        after = [_requests(p) for p in logs]
        traffic = {k: sum(a[k] - b[k] for a, b in zip(after, before, strict=True)) / 10
                   for k in before[0]}
        busy_rss = _rss_mib(pid)
        print(f"machine: {machine()}")
        print(f"idle agent: {idle_cpu:.2f}% of one core, RSS {idle_rss:.1f} MiB")
        print(f"submit -> running, {len(latencies)}/{args.tasks} tasks on 2 agents: "
              f"p50 {median(latencies):.2f}s, p99 {percentile(latencies, 99):.2f}s, "
              f"max {max(latencies, default=float('nan')):.2f}s")
        print(f"while running them (both agents, per second): "
              f"{traffic['heartbeat']:.2f} heartbeats, {traffic['status']:.2f} status reports, "
              f"{traffic['watch']:.2f} allocation reads; agent RSS {busy_rss:.1f} MiB")
    finally:
        stop_all(agents, signal.SIGTERM, 60)
        c.kill_all()


if __name__ == "__main__":
    main()
