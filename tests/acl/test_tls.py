"""TLS with certificates made inside the test.

The table: an agent (the real ``Servers`` client an agent uses) dials a TLS endpoint serving
one certificate per row, and accepts only a server certificate of its region from its CA.
Then a real server on HTTPS: the CLI works with FEDERATION_CACERT and fails clearly without.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from federation import tls
from federation.agent.remote import Servers, ServersUnreachable
from federation.errors import FederationError
from tests.harness import SECRET, ServerProcess, free_ports, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tls.Issued]:
    root = tmp_path_factory.mktemp("pki")
    ca = tls.create_ca(root / "ca")
    other_ca = tls.create_ca(root / "other-ca")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    return {
        "ca": ca,
        "server": tls.create_cert("server", "r1", ca, root / "server"),
        "agent": tls.create_cert("agent", "r1", ca, root / "agent"),
        "cli": tls.create_cert("cli", "r1", ca, root / "cli"),
        "other-region": tls.create_cert("server", "r2", ca, root / "r2"),
        "other-ca": tls.create_cert("server", "r1", other_ca, root / "other"),
        "expired": tls.create_cert("server", "r1", ca, root / "expired", days=1,
                                   not_before=past),
    }


class _Settings(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"heartbeat_ttl": 10}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(cert: tls.Issued | None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Settings)
    scheme = "http"
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert.cert_path, cert.key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("presented", "accepted"), [
    ("server", True),
    ("agent", False),         # same CA, but an agent's name
    ("cli", False),           # same CA, a CLI user's name
    ("other-region", False),  # a server of region r2
    ("other-ca", False),      # right name, wrong CA
    ("expired", False),
    (None, False),            # plain HTTP where the agent expects TLS
])
def test_an_agent_accepts_only_a_server_certificate_of_its_region(pki, presented, accepted
                                                                   ) -> None:
    cert = pki[presented] if presented else None
    for url in serve(cert):
        target = url.replace("http://", "https://")
        client = Servers([target], None, verify=tls.client_context(str(pki["ca"].cert_path)),
                         server_name=tls.server_name("r1"))
        try:
            if accepted:
                answer, _ = client.call("GET", "/v1/agent/settings", deadline=5)
                assert answer == {"heartbeat_ttl": 10}
            else:
                with pytest.raises((ServersUnreachable, FederationError)):
                    client.call("GET", "/v1/agent/settings", deadline=1)
        finally:
            client.close()


def test_key_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ca = tls.create_ca(tmp_path / "ca")
        issued = tls.create_cert("server", "r1", ca, tmp_path / "s")
    finally:
        os.umask(old)
    for key in (ca.key_path, issued.key_path):
        assert key.stat().st_mode & 0o777 == 0o600


def test_a_server_on_https_works_for_a_cli_that_trusts_its_ca(pki, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    http, raft = free_ports(2)
    server = ServerProcess(
        id="tls1", http_port=http, raft_port=raft, peers=[], data_dir=tmp_path / "d",
        secret_file=secret, extra_args=[
            "--tls-cert", str(pki["server"].cert_path), "--tls-key", str(pki["server"].key_path),
            "--tls-ca", str(pki["ca"].cert_path)])
    server.start()
    url = f"https://127.0.0.1:{http}"
    try:
        def cli(cacert: str | None) -> subprocess.CompletedProcess[str]:
            env = {k: v for k, v in os.environ.items() if k != "FEDERATION_CACERT"}
            if cacert:
                env["FEDERATION_CACERT"] = cacert
            return subprocess.run(
                [sys.executable, "-m", "federation.cli.main", "--address", url, "status"],
                env=env, capture_output=True, text=True, timeout=60)

        trusted = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
            cli(str(pki["ca"].cert_path))), 30, "the CLI over TLS")
        assert "tls1" in trusted.stdout
        untrusted = cli(None)
        assert untrusted.returncode != 0
        assert "FEDERATION_CACERT" in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1
        wrong_ca = cli(str(pki["other-ca"].cert_path.parent.parent / "other-ca" /
                           "federation-ca.pem"))
        assert wrong_ca.returncode != 0 and "not trusted" in wrong_ca.stderr
    finally:
        server.kill()


def test_an_agent_joins_over_tls_and_serves_logs_only_to_servers_with_a_certificate(
        pki, tmp_path: Path) -> None:
    import httpx

    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    join = tmp_path / "join"
    join.write_text("tls-join-token-0123456789")
    http, raft = free_ports(2)
    ca = str(pki["ca"].cert_path)
    server = ServerProcess(
        id="tls2", http_port=http, raft_port=raft, peers=[], data_dir=tmp_path / "d",
        secret_file=secret, token_file=tmp_path / "boot", extra_args=[
            "--join-token-file", str(join),
            "--tls-cert", str(pki["server"].cert_path), "--tls-key", str(pki["server"].key_path),
            "--tls-ca", ca])
    (tmp_path / "boot").write_text("tls-boot-token-0123456789")
    server.start()
    url = f"https://127.0.0.1:{http}"
    agent = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "agent", "--server", url, "--region", "r1",
         "--data-dir", str(tmp_path / "agent"), "--name", "tls-node", "--join-token-file",
         str(join), "--tls-ca", ca, "--tls-cert", str(pki["agent"].cert_path),
         "--tls-key", str(pki["agent"].key_path), "--tls-require-client-cert",
         "--stop-tasks-on-exit"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "wb"))  # noqa: SIM115
    admin = httpx.Client(base_url=url, verify=tls.client_context(ca), timeout=10,
                         headers={"Authorization": "Bearer tls-boot-token-0123456789"})
    try:
        node = wait_for(lambda: next(iter(admin.get("/v1/nodes").json()), None), 60,
                        "the agent to join over TLS")
        assert node["http_address"].startswith("https://127.0.0.1:")
        job = {"id": "hello", "type": "batch", "groups": [{
            "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
            "task": {"driver": "exec", "command": ["/bin/echo", "over-tls"]}}]}
        assert admin.post("/v1/jobs", json=job).status_code == 201
        alloc = wait_for(lambda: next((a for a in admin.get(
            "/v1/allocations", params={"job": "hello"}).json()
            if a["client_status"] == "complete"), None), 60, "the job to complete")
        logs = admin.get(f"/v1/allocations/{alloc['id']}/logs")
        assert logs.status_code == 200 and logs.text == "over-tls\n", logs.text
        # Without a client certificate, the agent's endpoint does not even answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(node["http_address"] + "/v1/health", timeout=5,
                      verify=tls.client_context(ca))
    finally:
        admin.close()
        agent.terminate()
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
        server.kill()
