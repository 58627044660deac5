"""The boot script is the single source of truth for how a master starts: the `federation
server` command lines Terraform renders for three servers, run on loopback (addresses, data
directories and the install path substituted), form one cluster with an agreed leader."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.terraform.conftest import exec_start, free_port, parse_flags

# Placeholders: never contacted, each rendered address is replaced by 127.0.0.1 and a free port.
SERVERS = [
    {"id": "fed-1", "address": "10.0.1.10"},
    {"id": "fed-2", "address": "10.0.2.10"},
    {"id": "fed-3", "address": "10.0.3.10"},
]
INSTALL_DIR = "/opt/federation"
SECRET = "raft-secret-for-the-template-test"
TOKEN = "api-token-for-the-template-test"


def federation_command() -> list[str]:
    """The `federation` console script installed beside the interpreter running the tests
    (not whichever is first on PATH), or the module itself."""
    script = Path(sys.executable).parent / "federation"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "federation.cli.main"]


@pytest.fixture(scope="module")
def federation_server_available() -> None:
    try:
        result = subprocess.run(
            [*federation_command(), "server", "--help"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"`federation server --help` cannot run: {exc}")
    if result.returncode != 0:
        pytest.skip("`federation server --help` fails: the server command is not installed")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def status(http: str) -> dict[str, object] | None:
    request = urllib.request.Request(
        f"http://{http}/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def test_rendered_commands_form_a_cluster(
    federation_server_available: None, render_bootstrap, processes, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    outputs = render_bootstrap(
        cluster_name="fed",
        servers=SERVERS,
        install_dir=INSTALL_DIR,
        config_dir=str(config_dir),
        data_dir="/var/lib/federation",
    )
    (config_dir / "raft-secret").write_text(SECRET)
    (config_dir / "api-token").write_text(TOKEN)

    rendered = {s["id"]: outputs["servers"][s["id"]] for s in SERVERS}
    loopback = {}
    for server in rendered.values():
        loopback[server["raft_address"]] = f"127.0.0.1:{free_port()}"
        loopback[server["http_address"]] = f"127.0.0.1:{free_port()}"

    http_addresses = []
    for server_id, server in rendered.items():
        argv = shlex.split(exec_start(server["script"]))
        assert argv[0] == f"{INSTALL_DIR}/bin/federation"
        flags = parse_flags(argv)
        assert flags["--secret-file"] == str(config_dir / "raft-secret")
        assert flags["--token-file"] == str(config_dir / "api-token")
        data_dir = tmp_path / "data" / server_id
        command = [*federation_command(), *argv[1:]]
        for index, arg in enumerate(command):
            if arg in loopback:
                command[index] = loopback[arg]
            elif "," in arg and all(part in loopback for part in arg.split(",")):
                command[index] = ",".join(loopback[part] for part in arg.split(","))
            elif arg == flags["--data-dir"] and command[index - 1] == "--data-dir":
                command[index] = str(data_dir)
        assert not any(s["address"] in arg for arg in command for s in SERVERS), command
        http_addresses.append(loopback[server["http_address"]])
        log = (tmp_path / f"{server_id}.log").open("wb")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def agreed(answers: list[dict[str, object] | None]) -> bool:
        """Every server answers, names the same leader, and lists all three servers."""
        if any(a is None for a in answers):
            return False
        leaders = {a["leader"] for a in answers}
        return (
            len(leaders) == 1
            and leaders.pop() in rendered
            and all({s["id"] for s in a["servers"]} == set(rendered) for a in answers)
        )

    deadline = time.monotonic() + 45
    seen: list[dict[str, object] | None] = []
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, "a server exited: see its log in " + str(tmp_path)
        seen = [status(http) for http in http_addresses]
        if agreed(seen):
            break
        time.sleep(0.2)
    else:
        logs = "\n".join((tmp_path / f"{s['id']}.log").read_text()[-2000:] for s in SERVERS)
        pytest.fail(f"no agreed leader and membership within 45 s: {seen}\n{logs}")
