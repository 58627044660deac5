"""Credentials with one job each, tried as an attacker with a job to run, a node to register
or a symlink to plant: nothing reaches a credential (real server, real agent)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.harness import SECRET, Cluster, wait_for

BOOT = "credentials-bootstrap-token-0123"
JOIN = "credentials-join-token-456789abc"
SYSTEM_PYTHON = "/usr/bin/python3"
root_only = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="task identities need root, and tasks need a system Python `nobody` can run")

# What a malicious task tries: every environment it can read, the agent's data dir, its own
# environment, and a link in its log dir. It prints everything it manages to read.
THIEF = textwrap.dedent("""
    import glob, os, sys
    print("UID", os.getuid())
    environs = 0
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        environs += 1
        print("ENVIRON", path, data.replace(b"\\0", b" ").decode(errors="replace"))
    print("ENVIRONS-READ", environs)
    print("OWN-ENV", dict(os.environ))
    data_dir = sys.argv[1]
    try:
        for base, dirs, files in os.walk(data_dir, onerror=lambda e: print("WALK-ERROR", e)):
            for name in files:
                try:
                    print("FILE", name, open(os.path.join(base, name), "rb").read()[:65536])
                except OSError as exc:
                    print("FILE-ERROR", name, exc)
    except OSError as exc:
        print("DATA-DIR-ERROR", exc)
    try:
        os.symlink(os.path.join(data_dir, "node.json"),
                   os.path.join(os.environ.get("FEDERATION_ALLOC_DIR", "."), "logs",
                                "stdout.99999999999999999999.log"))
        print("LINK-PLANTED")
    except OSError as exc:
        print("LINK-ERROR", exc)
    try:
        print("NODE-JSON", open(os.path.join(data_dir, "node.json")).read())
    except OSError as exc:
        print("NODE-JSON-ERROR", exc)
    print("THIEF-DONE")
""")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    # One server for the module (each test uses its own node names): starting one per test
    # would cost more than the tests.
    tmp_path = tmp_path_factory.mktemp("secured")
    join = tmp_path / "join.token"
    join.write_text(JOIN)
    join.chmod(0o600)
    cluster = Cluster(tmp_path / "c", size=1, token=BOOT,
                      extra_args=["--join-token-file", str(join)]).start()
    server = cluster.servers[0]
    admin = httpx.Client(base_url=server.url, timeout=10,
                         headers={"Authorization": f"Bearer {BOOT}"})
    agents: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(lambda: admin.get("/v1/status").json()["leader"], 30, "a leader")
        yield server, admin, join, agents
    finally:
        for proc in agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        admin.close()
        cluster.kill_all()


def start_agent(server, join: Path, data_dir: Path, agents: list, name: str = "victim"
                ) -> subprocess.Popen[bytes]:
    # The default task identity is under test: no FEDERATION_TASK_USER. The join secret is
    # given both ways an operator may give it (file and environment).
    env = {k: v for k, v in os.environ.items() if k != "FEDERATION_TASK_USER"}
    env.update({"FEDERATION_TOKEN": JOIN, "OTEL_TRACES_EXPORTER": "none"})
    log = open(data_dir.parent / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "agent", "--server", server.url,
         "--data-dir", str(data_dir), "--name", name, "--cpu", "2000", "--memory", "2048",
         "--join-token-file", str(join), "--stop-tasks-on-exit"],
        stdout=log, stderr=log, env=env)
    log.close()
    agents.append(proc)
    return proc


@root_only
def test_a_job_finds_no_credential_anywhere_it_looks(secured, tmp_path: Path) -> None:
    server, admin, join, agents = secured
    data_dir = tmp_path / "agent"
    agent = start_agent(server, join, data_dir, agents)
    wait_for(lambda: (data_dir / "node.json").exists(), 30, "the agent to register")
    node = json.loads((data_dir / "node.json").read_text())
    assert oct((data_dir / "node.json").stat().st_mode & 0o777) == "0o600"
    assert oct(data_dir.stat().st_mode & 0o777) == "0o700"
    job = {"id": "thief", "type": "batch", "groups": [{
        "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 128},
        "restart": {"attempts": 0},
        "task": {"driver": "exec", "command": [SYSTEM_PYTHON, "-c", THIEF, str(data_dir)]}}]}
    assert admin.post("/v1/jobs", json=job).status_code == 201
    alloc = wait_for(lambda: next((a for a in admin.get(
        "/v1/allocations", params={"job": "thief"}).json()
        if a["client_status"] in ("complete", "failed")), None), 60, "the thief to finish")
    answer = admin.get(f"/v1/allocations/{alloc['id']}/logs")
    assert answer.status_code == 200, answer.text
    output = answer.text
    assert "THIEF-DONE" in output, output[-2000:]
    # It ran as somebody else, really looked, and was refused.
    assert f"UID {os.geteuid()}" not in output
    assert "ENVIRONS-READ" in output and "NODE-JSON-ERROR" in output
    assert "LINK-PLANTED" not in output
    for secret in (BOOT, JOIN, SECRET, node["token"], node["signing_key"]):
        assert secret not in output
    assert agent.poll() is None


@root_only
def test_a_non_dumpable_process_hides_its_environment_from_its_own_user(tmp_path: Path
                                                                         ) -> None:
    """Two processes of one unprivileged uid: the agent's environment is readable by its
    sibling unless the agent makes itself non-dumpable (the reason the agent does)."""
    holder = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, sys.argv[2])
        if sys.argv[1] == "hide":
            from federation.agent.identity import make_non_dumpable
            assert make_non_dumpable()
        print("ready", flush=True)
        time.sleep(30)
    """)
    reader = ("import sys; "
              "print(open(f'/proc/{sys.argv[1]}/environ', 'rb').read().count(b'TOPSECRET'))")
    nobody = 65534
    # The holder imports the project's own code, copied where `nobody` can read it.
    source = str(tmp_path / "src")
    os.makedirs(source)
    subprocess.run(["cp", "-r", str(Path(__file__).resolve().parents[2] / "federation"),
                    source], check=True)
    os.chmod(tmp_path, 0o755)
    subprocess.run(["chmod", "-R", "a+rX", source], check=True)

    def attempt(mode: str) -> str:
        proc = subprocess.Popen([SYSTEM_PYTHON, "-c", holder, mode, source],
                                env={"TOPSECRET": "x", "PATH": "/usr/bin:/bin"},
                                user=nobody, group=nobody, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            seen = subprocess.run([SYSTEM_PYTHON, "-c", reader, str(proc.pid)],
                                  user=nobody, group=nobody, capture_output=True, text=True,
                                  timeout=20)
            return seen.stdout.strip() or seen.stderr.strip().splitlines()[-1]
        finally:
            proc.kill()
            proc.wait(10)

    assert attempt("show") == "1"
    assert "Permission denied" in attempt("hide")


def test_a_symlink_in_a_log_dir_is_not_served(tmp_path: Path) -> None:
    from federation.agent.logs import read

    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "stdout.00000000000000000000.log").write_bytes(b"mine\n")
    secret = tmp_path / "node.json"
    secret.write_text('{"token": "do-not-serve"}')
    os.symlink(secret, log_dir / "stdout.00000000000000000005.log")
    os.link(secret, log_dir / "stdout.00000000000000000010.log")
    start, data = read(log_dir, "stdout", 0)
    assert data == b"mine\n"
    assert b"do-not-serve" not in read(log_dir, "stdout", 5)[1]
    assert b"do-not-serve" not in read(log_dir, "stdout", -100)[1]


@pytest.mark.parametrize(("address", "why"), [
    ("http://10.1.2.3:8080", "neither the address this registration came from"),
    ("http://169.254.169.254:80", "cannot be an agent address"),
    ("http://127.0.0.1:8080/latest/meta-data?x=1", "path, query"),
    ("http://user:pw@127.0.0.1:8080", "credentials"),
    ("http://metadata.google.internal:80", "an IP address"),
    ("file:///etc/passwd", "http://IP:PORT"),
])
def test_a_registration_with_a_foreign_agent_address_is_refused(secured, address, why
                                                                 ) -> None:
    server, admin, _, _ = secured
    answer = httpx.post(server.url + "/v1/nodes", headers={"Authorization": f"Bearer {JOIN}"},
                        timeout=10, json={"name": "evil", "http_address": address,
                                          "capacity": {"cpu_milli": 100, "memory_mib": 64}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "http_address"
    assert why in answer.json()["error"]["message"]
    assert "evil" not in [n["name"] for n in admin.get("/v1/nodes").json()]


def test_the_old_free_address_label_is_refused(secured) -> None:
    server, _, _, _ = secured
    answer = httpx.post(server.url + "/v1/nodes", headers={"Authorization": f"Bearer {JOIN}"},
                        timeout=10, json={
                            "name": "evil", "labels": {"federation/agent-http":
                                                       "http://10.0.0.1:1/x"},
                            "capacity": {"cpu_milli": 100, "memory_mib": 64}})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "labels.federation/agent-http"


def test_a_node_name_is_taken_over_only_with_its_own_credential(secured) -> None:
    server, admin, _, _ = secured
    body = {"name": "n1", "capacity": {"cpu_milli": 100, "memory_mib": 64}}
    join = {"Authorization": f"Bearer {JOIN}"}
    first = httpx.post(server.url + "/v1/nodes", headers=join, json=body, timeout=10)
    assert first.status_code == 201
    stolen = httpx.post(server.url + "/v1/nodes", headers=join, json=body, timeout=10)
    assert stolen.status_code == 409 and stolen.json()["error"]["field"] == "name"
    other = httpx.post(server.url + "/v1/nodes", json={**body, "name": "n2"}, timeout=10,
                       headers={"X-Node-Token": first.json()["token"]})
    assert other.status_code == 403  # a node credential registers its own node only
    own = httpx.post(server.url + "/v1/nodes", json=body, timeout=10,
                     headers={"X-Node-Token": first.json()["token"]})
    assert own.status_code == 201 and own.json()["id"] == first.json()["id"]
    assert admin.post("/v1/nodes", json=body).status_code == 201  # management may
    # The join secret registers nodes and does nothing else.
    assert httpx.get(server.url + "/v1/jobs", headers=join, timeout=10).status_code == 403
    assert httpx.get(server.url + "/v1/nodes", headers=join, timeout=10).status_code == 403


def test_snapshots_carry_no_signing_key(secured) -> None:
    server, admin, _, _ = secured
    node = httpx.post(server.url + "/v1/nodes", headers={"Authorization": f"Bearer {JOIN}"},
                      timeout=10, json={"name": "n9", "capacity": {"cpu_milli": 100,
                                                                   "memory_mib": 64}}).json()
    snapshot = json.dumps(admin.get("/v1/snapshot").json())
    assert node["signing_key"] not in snapshot and node["token"] not in snapshot
