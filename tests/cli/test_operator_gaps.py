"""What a new operator tripped over, each against a real server through the real CLI: a
misspelled provider or field, a drain that could not be undone, a failure reason hidden in
JSON, a job nothing can ever hold accepted silently, long ids, a second `make dev`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from federation.cli.jobs import never_placeable
from federation.cli.main import app
from federation.cli.server import wipe_dev_data
from federation.errors import ValidationError
from federation.ids import new_id
from federation.server.config import ServerConfig
from federation.server.master import Master
from federation.specs.job import validate_job
from tests import placing
from tests.harness import SECRET, free_ports, wait_for

TOKEN = "gaps-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Master]:
    http, raft = free_ports(2)
    m = Master(ServerConfig(
        id="g1", data_dir=str(tmp_path_factory.mktemp("server")), http=f"127.0.0.1:{http}",
        raft=f"127.0.0.1:{raft}", secret=SECRET, token=TOKEN, heartbeat_ttl=300))
    m.start()
    try:
        wait_for(lambda: m.raft is not None and m.raft.is_leader(), 15, "leadership")
        commit(m, {"type": "node.register", "node": {
            "id": "9f" * 16, "name": "rack1-a", "token_hash": "x", "pool": "default",
            "capacity": {"cpu_milli": 4000, "memory_mib": 8192, "gpu": 0}}})
        yield m
    finally:
        m.stop()


def commit(master: Master, command: dict) -> dict:
    result = master.commit_sync({"id": f"t:{new_id()}", "time": time.time(), **command})
    assert result["ok"], result
    return result["value"]


def federation(master: Master, *args: str, token: str | None = TOKEN):
    env = {"FEDERATION_ADDR": f"http://{master.config.http}", "FEDERATION_TOKEN": token,
           "FEDERATION_TIMEOUT": "10"}
    return runner.invoke(app, list(args), env=env)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# 1. a misspelled provider is refused when the pool is applied
def test_a_pool_of_an_unknown_provider_is_refused_at_apply(master, tmp_path):
    pool = write(tmp_path, "pool.yaml", "name: burst\nprovider: lcoal\nmax_nodes: 2\n")
    result = federation(master, "pool", "apply", pool)
    assert result.exit_code == 1
    assert "unknown provider lcoal, did you mean local?" in result.stderr
    assert "known providers: aws, gcp, local, onprem" in result.stderr
    assert "burst" not in master.machine.pools


# 2. a drain can be undone
def test_node_undrain_makes_a_drained_node_eligible_again(master):
    assert federation(master, "node", "drain", "rack1-a").exit_code == 0
    assert master.machine.nodes["9f" * 16]["draining"] is True
    result = federation(master, "node", "undrain", "rack1-a")
    assert result.exit_code == 0, result.output
    assert "eligible for new work again" in result.stdout
    assert master.machine.nodes["9f" * 16]["draining"] is False


# 3. a misspelled field is named as such, with every other problem
def test_a_misspelled_field_is_named_with_a_suggestion_and_all_problems_are_shown(
        master, tmp_path):
    spec = write(tmp_path, "job.yaml", (
        "id: typo\ntype: batch\ngroups:\n  - name: main\n    count: 0\n"
        "    resources: {cpu: 100, memroy: 64}\n    task: {driver: exec, command: [echo]}\n"))
    result = federation(master, "job", "run", spec)
    assert result.exit_code == 1
    line = result.stderr
    assert "groups[0].resources.memroy: unknown field memroy, did you mean memory?" in line
    assert "groups[0].count:" in line and "3 problems" in line
    assert line.index("memroy") < line.index("groups[0].count")
    assert "typo" not in master.machine.jobs


# 4. why an allocation failed, without -o json
def test_alloc_status_says_why_an_allocation_failed(master):
    commit(master, {"type": "job.register", "spec": validate_job({
        "id": "broken", "type": "batch", "groups": [{
            "name": "main", "count": 1, "resources": {"cpu": 100, "memory": 64},
            "task": {"driver": "exec", "command": ["/no/such/binary"]}}]})})
    alloc_id = "ab" * 12 + "00c0ffee"
    placing.place(lambda command: commit(master, command), [{
        "id": alloc_id, "job_id": "broken", "group": "main", "index": 0,
        "node_id": "9f" * 16, "desired_status": "stop", "client_status": "failed",
        "exit_code": 127, "message": "No such file or directory: '/no/such/binary'",
        "resources": {"cpu_milli": 100, "memory_mib": 64}}])
    commit(master, {"type": "job.deregister", "job_id": "broken"})  # no replacement
    result = federation(master, "alloc", "status", "00c0ffee")  # the short id tables show
    assert result.exit_code == 0, result.output
    assert "No such file or directory" in result.stdout and "exit code 127" in result.stdout
    assert "rack1-a" in result.stdout and "failed" in result.stdout

    table = federation(master, "alloc", "list", "--job", "broken").stdout
    assert "00c0ffee" in table and alloc_id not in table  # short ids
    assert "rack1-a" in table and "9f" * 16 not in table  # node names

    logs = federation(master, "alloc", "logs", "00c0ffee")
    assert logs.exit_code == 1
    assert "no allocation" not in logs.stderr and "rack1-a" in logs.stderr


# 5. a job nothing can ever hold is not silently accepted
GPU_JOB = ("id: {id}\ntype: batch\ngroups:\n  - name: train\n    count: 1\n"
           "    resources: {{cpu: 100, memory: 64, gpu: 64}}\n"
           "    task: {{driver: exec, command: [echo]}}\n")


def test_job_run_refuses_a_job_that_no_node_or_pool_can_ever_hold(master, tmp_path):
    spec = write(tmp_path, "gpu.yaml", GPU_JOB.format(id="huge"))
    result = federation(master, "job", "run", spec)
    assert result.exit_code == 1
    assert 'group "train" needs 64 GPU' in result.stderr and "not submitted" in result.stderr
    assert "huge" not in master.machine.jobs

    forced = federation(master, "job", "run", "--force", spec)
    assert forced.exit_code == 0 and "cannot be placed now" in forced.stderr
    assert "huge" in master.machine.jobs


def test_never_placeable_only_when_no_node_is_big_enough_and_no_pool_can_grow():
    spec = {"groups": [{"name": "g", "resources": {"cpu": 100, "memory": 64, "gpu": 0.5}}]}
    small = [{"status": "ready", "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}]
    gpu = [{"status": "ready", "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 1}}]
    full_pool = [{"max_nodes": 1, "nodes": {"total": 1}, "launching": 0}]
    open_pool = [{"max_nodes": 3, "nodes": {"total": 1}, "launching": 0}]
    assert never_placeable(spec, {"g": {}}, small, full_pool)
    assert never_placeable(spec, {"g": {}}, small, []) != []
    assert never_placeable(spec, {"g": {}}, gpu, []) == []  # a share fits a whole GPU
    assert never_placeable(spec, {"g": {}}, small, open_pool) == []  # the autoscaler may buy
    assert never_placeable(spec, {}, small, []) == []  # nothing unplaced
    down = [{**gpu[0], "status": "down"}]
    assert never_placeable(spec, {"g": {}}, down, []) != []


# 10. stopping twice, and the missing token
def test_job_stop_twice_says_it_was_already_stopped(master, tmp_path):
    spec = write(tmp_path, "s.yaml", (
        "id: twice\ntype: batch\ngroups:\n  - name: main\n    count: 1\n"
        "    resources: {cpu: 100, memory: 64}\n    task: {driver: exec, command: [echo]}\n"))
    assert federation(master, "job", "run", spec).exit_code == 0
    first = federation(master, "job", "stop", "twice")
    second = federation(master, "job", "stop", "twice")
    assert "stopped: version" in first.stdout
    assert second.exit_code == 0 and 'Job "twice" was already stopped.' in second.stdout


def test_a_missing_token_names_federation_token(master):
    result = federation(master, "job", "list", token=None)
    assert result.exit_code == 1 and "FEDERATION_TOKEN" in result.stderr


# 2 and 9. the dev cluster: a fresh start, and a second one refused
def test_a_second_make_dev_says_one_already_runs(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        env = {**os.environ, "FEDERATION_DEV_HTTP": address,
               "FEDERATION_DEV_RAFT": f"127.0.0.1:{free_ports(1)[0]}",
               "FEDERATION_DEV_DATA": str(tmp_path / "dev"),
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        started = time.monotonic()
        done = subprocess.run(["bash", str(ROOT / "scripts" / "dev.sh")], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        direct = runner.invoke(app, ["dev", "--http", address, "--raft", env[
            "FEDERATION_DEV_RAFT"], "--data-dir", str(tmp_path / "d")])
    assert direct.exit_code == 2 and "already listens" in direct.stderr
    assert done.returncode == 1
    assert f"already listens on {address}" in done.stderr
    assert time.monotonic() - started < 10
    assert not (tmp_path / "dev").exists()


def test_dev_fresh_starts_from_an_empty_state_and_keeps_everything_else(tmp_path):
    data = tmp_path / "dev"
    (data / "server").mkdir(parents=True)
    (data / "server" / "old-state").write_text("a draining node, old jobs, a cron")
    (data / "api.token").write_text("old-token")
    http, raft = free_ports(2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "dev", "--fresh", "--agents", "0",
         "--http", f"127.0.0.1:{http}", "--raft", f"127.0.0.1:{raft}", "--data-dir", str(data),
         "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{http}/v1/health").status_code == 200,
                 20, "the fresh dev server")
        assert not (data / "server" / "old-state").exists()
        assert (data / "api.token").read_text() != "old-token"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_dev_fresh_refuses_to_delete_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="notes.txt"):
        wipe_dev_data(tmp_path)
    assert (tmp_path / "notes.txt").exists()
    shutil.rmtree(tmp_path / "missing", ignore_errors=True)
    wipe_dev_data(tmp_path / "missing")  # nothing there: nothing to do


# 7. quotas
def test_a_memory_only_quota_is_accepted_and_shown_as_such(master, tmp_path):
    queue = write(tmp_path, "q.yaml", "name: mem-only\nweight: 1\nquota: {memory: 2048}\n")
    result = federation(master, "queue", "apply", queue)
    assert result.exit_code == 0, result.output
    assert master.machine.queues["mem-only"]["spec"]["quota"] == {"memory": 2048}
    listing = federation(master, "queue", "list").stdout
    row = next(line for line in listing.splitlines() if line.startswith("mem-only"))
    assert "2048 MiB" in row and "GPU" not in row


def test_a_job_bigger_than_its_queues_quota_is_told_it_can_never_run(master, tmp_path):
    queue = write(tmp_path, "q.yaml", "name: tiny\nquota: {cpu: 50}\n")
    assert federation(master, "queue", "apply", queue).exit_code == 0
    spec = write(tmp_path, "j.yaml", (
        "id: too-big\ntype: batch\nqueue: tiny\ngroups:\n  - name: main\n    count: 1\n"
        "    resources: {cpu: 100, memory: 64}\n    task: {driver: exec, command: [echo]}\n"))
    assert federation(master, "job", "run", spec).exit_code == 0

    def reason() -> str:
        return federation(master, "job", "status", "too-big").stdout

    text = wait_for(lambda: "can never run" in reason() and reason(), 15, "the quota reason")
    assert "more than queue tiny's whole quota (cpu 50m)" in text


def test_the_example_pool_file_is_accepted(master):
    result = federation(master, "pool", "apply", str(ROOT / "examples" / "pool-local.yaml"))
    assert result.exit_code == 0, result.output
    assert master.machine.pools["laptop"]["spec"]["provider"] == "local"
    assert federation(master, "pool", "delete", "laptop").exit_code == 0


def test_job_scale_sets_a_groups_count(master, tmp_path):
    spec = write(tmp_path, "w.yaml", (
        "id: scaled\ntype: service\ngroups:\n  - name: web\n    count: 1\n"
        "    resources: {cpu: 100, memory: 64}\n    task: {driver: exec, command: [echo]}\n"))
    assert federation(master, "job", "run", spec).exit_code == 0
    result = federation(master, "job", "scale", "scaled", "3")
    assert result.exit_code == 0, result.output
    assert 'group "web" scaled to 3: version 2' in result.stdout
    assert master.machine.jobs["scaled"]["spec"]["groups"][0]["count"] == 3
    wrong = federation(master, "job", "scale", "scaled", "2", "--group", "db")
    assert wrong.exit_code == 1 and "no group 'db'" in wrong.stderr
    federation(master, "job", "stop", "scaled")


def test_shell_completion_completes_commands():
    federation_bin = str(Path(sys.executable).parent / "federation")
    # The script `--show-completion` prints, asked for by shell name (the option itself
    # guesses the shell from the parent processes, which a test cannot rely on).
    script = subprocess.run([federation_bin], env={**os.environ,
                                                   "_FEDERATION_COMPLETE": "source_bash"},
                            capture_output=True, text=True, timeout=60)
    assert "_federation_completion" in script.stdout and "complete " in script.stdout
    env = {**os.environ, "COMP_WORDS": "federation alloc st", "COMP_CWORD": "2",
           "_FEDERATION_COMPLETE": "complete_bash"}
    words = subprocess.run([federation_bin], env=env,
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert {"status", "stop"} <= set(words)


# events
def test_events_show_what_changed_after_an_index_and_wait_for_the_next(master, tmp_path):
    start = master.machine.index
    spec = write(tmp_path, "e.yaml", (
        "id: evented\ntype: batch\ngroups:\n  - name: main\n    count: 1\n"
        "    resources: {cpu: 100, memory: 64}\n    task: {driver: exec, command: [echo]}\n"))
    assert federation(master, "job", "run", spec).exit_code == 0
    result = federation(master, "events", "--index", str(start), "--topic", "job")
    assert result.exit_code == 0, result.output
    assert "job.registered" in result.stdout and "evented" in result.stdout

    url = f"http://{master.config.http}/v1/events"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    now = int(httpx.get(url, params={"index": master.machine.index, "wait": 0},
                        headers=headers).headers["x-federation-index"])
    with httpx.Client(headers=headers, timeout=20) as http:
        import threading

        stopper = threading.Timer(0.5, lambda: federation(master, "job", "stop", "evented"))
        stopper.start()
        started = time.monotonic()
        answer = http.get(url, params={"index": now, "wait": 10, "topic": "job"})
        stopper.join()
    assert 0.3 < time.monotonic() - started < 9
    assert [e["type"] for e in answer.json()] == ["job.stopped"]
    assert http_bad_topic(url, headers) == 400


def http_bad_topic(url: str, headers: dict) -> int:
    return httpx.get(url, params={"topic": "jobz"}, headers=headers).status_code


def test_status_does_not_call_a_killed_server_a_follower(tmp_path):
    from tests.harness import Cluster

    cluster = Cluster(tmp_path / "c", size=3).start()
    try:
        leader = cluster.wait_leader(timeout=40)
        victim = cluster.followers(leader)[0]
        victim.kill()

        def role_of_victim() -> str | None:
            servers = leader.status()["servers"]
            role = next(s["role"] for s in servers if s["raft"] == victim.raft)
            return role if role == "unreachable" else None

        wait_for(role_of_victim, 20, "the killed server shown unreachable")
        result = runner.invoke(app, ["status"], env={"FEDERATION_ADDR": leader.url,
                                                     "FEDERATION_TOKEN": None})
        assert "unreachable" in result.stdout, result.output
    finally:
        cluster.kill_all()
