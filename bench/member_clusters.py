"""Member Kubernetes clusters at scale: N fake member clusters of M nodes each join one
federation server through the production path (federation cluster add → the leader's
connectors → node registration, heartbeats, pods through the real `kubernetes` client).

Prints:
- the time for all N x M member nodes to join the pool;
- the time from a service job's submission (``--replicas``, spread over ``cluster``) to every
  allocation placed, every pod created in the fakes, every pod Running there, and every
  allocation reported running; the ratio pods-Running / placed is the cost of the member
  round trip over the scheduler's own work (the baseline, measured in the same run);
- the server's CPU while idle, before any cluster was added (baseline) and with the
  connectors idle (nothing changing), over ``--idle`` seconds.

The fake API servers run in this process (their kubelets start a bound pod after
``--start-delay`` seconds); the server is a separate process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cluster, machine  # noqa: E402
from bench.idle_server import cpu_seconds, rss_mib  # noqa: E402
from tests.kubernetes.fake_apiserver import FakeKubeAPIServer  # noqa: E402


def idle_cpu(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


def wait(what: str, predicate, timeout: float, interval: float = 0.2) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=200, help="nodes per member cluster")
    parser.add_argument("--replicas", type=int, default=5000)
    parser.add_argument("--ttl", type=float, default=30.0, help="--heartbeat-ttl, seconds")
    parser.add_argument("--idle", type=float, default=30.0, help="idle CPU window, seconds")
    parser.add_argument("--start-delay", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()

    c = cluster(["--heartbeat-ttl", str(args.ttl), "--log-level", args.log_level], size=1).start()
    fakes: list[FakeKubeAPIServer] = []
    try:
        server = c.wait_leader(timeout=60)
        url, pid = server.url, server.proc.pid
        http = httpx.Client(base_url=url, timeout=60)
        time.sleep(3)
        baseline_cpu = idle_cpu(pid, args.idle)
        baseline_rss = rss_mib(pid)

        for i in range(args.clusters):
            fake = FakeKubeAPIServer(name=f"m{i + 1}", token=f"t{i}",
                                     start_delay=args.start_delay,
                                     bookmark_interval=30.0).start()
            for n in range(args.nodes):
                fake.add_node(f"node-{n:04d}", cpu="8", memory="32Gi",
                              zone=f"m{i + 1}-{'abc'[n % 3]}", region=f"m{i + 1}")
            fakes.append(fake)
        total_nodes = args.clusters * args.nodes
        added = time.monotonic()
        for fake in fakes:
            r = http.put(f"/v1/clusters/{fake.name}", json={"kubeconfig": fake.kubeconfig()})
            r.raise_for_status()

        def joined() -> bool:
            nodes = http.get("/v1/nodes").json()
            return sum(1 for n in nodes if n["status"] == "ready") >= total_nodes
        join_s = wait("every member node in the pool", joined, args.timeout, 1.0)
        print(f"{total_nodes} member nodes joined in {join_s:.1f}s "
              f"(from the first cluster add: {time.monotonic() - added:.1f}s)")
        time.sleep(args.ttl / 3 + 2)  # registration done: the connectors are idle now
        members_cpu = idle_cpu(pid, args.idle)
        members_rss = rss_mib(pid)

        job = {"id": "bench", "type": "service", "groups": [{
            "name": "web", "count": args.replicas, "spread": "cluster",
            "resources": {"cpu": 100, "memory": 64},
            "task": {"driver": "exec", "command": ["sleep", "3600"]}}]}
        submitted = time.monotonic()
        http.post("/v1/jobs", json=job).raise_for_status()
        marks: dict[str, float] = {}

        def progress() -> bool:
            now = time.monotonic() - submitted
            if "placed" not in marks:
                view = http.get("/v1/jobs/bench").json()
                counts = view.get("allocations") or {}
                if sum(counts.values()) >= args.replicas:
                    marks["placed"] = now
            pods = [p for f in fakes for p in f.federation_pods()]
            if "created" not in marks and len(pods) >= args.replicas:
                marks["created"] = now
            if "pods running" not in marks and len(pods) >= args.replicas and all(
                    p["status"].get("phase") == "Running" for p in pods):
                marks["pods running"] = now
            if "pods running" in marks:
                counts = http.get("/v1/jobs/bench").json().get("allocations") or {}
                if counts.get("running", 0) >= args.replicas:
                    marks["reported running"] = now
                    return True
            return False
        wait("every replica running", progress, args.timeout, 0.5)
        per_cluster = [len(f.federation_pods()) for f in fakes]

        print(f"machine: {machine()}")
        print(f"{args.clusters} member clusters x {args.nodes} nodes, {args.replicas} replicas "
              f"(spread: cluster), heartbeat TTL {args.ttl:g}s, kubelet start delay "
              f"{args.start_delay:g}s")
        for mark in ("placed", "created", "pods running", "reported running"):
            print(f"  submit -> {mark:17s} {marks[mark]:7.2f}s")
        print(f"  pods per cluster: {per_cluster}")
        print(f"  ratio pods Running / placed: {marks['pods running'] / marks['placed']:.2f}x")
        print(f"idle server CPU over {args.idle:g}s: no member clusters {baseline_cpu:.2f}% of a "
              f"core ({baseline_rss:.0f} MiB); with {total_nodes} member nodes "
              f"{members_cpu:.2f}% ({members_rss:.0f} MiB); connectors' share "
              f"{members_cpu - baseline_cpu:.2f}% ({members_cpu / max(baseline_cpu, 0.01):.1f}x)")
    finally:
        c.stop()
        for fake in fakes:
            fake.stop()


if __name__ == "__main__":
    main()
