"""The `federation` client commands against a fake server over loopback HTTP: what they print
(tables for people, JSON for tools), what they send, and how they fail (one line on stderr, a
non-zero exit, never a traceback)."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from federation.cli.main import app

runner = CliRunner()

JOB_YAML = """\
id: nightly-etl
type: batch
priority: 50
queue: analytics
groups:
  - name: worker
    count: 2
    resources: {cpu: 500, memory: 256, gpu: 0}
    task:
      driver: exec
      command: ["python3", "-c", "print('hello')"]
"""


def federation(fake, *args: str, **env: str | None):
    """Run the command line with the fake cluster as FEDERATION_ADDR and a clean environment."""
    environment = {
        "FEDERATION_ADDR": fake.url,
        "FEDERATION_TOKEN": None,
        "FEDERATION_TIMEOUT": None,
        **env,
    }
    return runner.invoke(app, list(args), env=environment)


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    line = result.stderr
    assert line.startswith("Error: ") and line.endswith("\n") and line.count("\n") == 1, line
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in line, line
    return line.rstrip("\n")


def submitted(fake) -> list[dict]:
    return [r for r in fake.requests if (r["method"], r["path"]) == ("POST", "/v1/jobs")]


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "etl.yaml"
    path.write_text(JOB_YAML)
    return path


# -- status --


def test_status_shows_leader_term_index_and_each_server_with_its_role(fake):
    result = federation(fake, "status")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "Leader:",
        "s1",
        "Term:",
        "4",
        "Commit",
        "index:",
        "10",
        "Answered",
        "by:",
        "s2",
    ]
    rows = {
        line.split()[0]: line.split()
        for line in lines[1:]
        if line.strip()[:2] == "s1" or line.strip()[:2] in ("s2", "s3")
    }
    assert rows["s1"][1] == "leader" and rows["s2"][1] == "follower"
    assert "http://127.0.0.1:4781" in result.stdout


def test_status_as_json_is_the_api_answer(fake):
    result = federation(fake, "-o", "json", "status")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["leader"] == "s1" and [s["id"] for s in answer["servers"]] == ["s1", "s2", "s3"]


# -- job run --


def test_job_run_submits_the_yaml_spec_as_json_and_says_what_was_created(fake, job_file):
    result = federation(fake, "job", "run", str(job_file))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('Job "nightly-etl" submitted: version 1, index 11.')
    (request,) = submitted(fake)
    assert json.loads(request["body"])["groups"][0]["resources"] == {
        "cpu": 500,
        "memory": 256,
        "gpu": 0,
    }
    assert request["headers"]["idempotency-key"]


def test_job_run_reads_json_files_too(fake, tmp_path):
    spec = {"id": "hello", "type": "batch", "groups": [{"name": "g", "count": 1}]}
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(spec))

    result = federation(fake, "job", "run", str(path), "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": "hello", "version": 1, "index": 11}
    assert json.loads(submitted(fake)[0]["body"]) == spec


def test_job_run_reads_stdin_given_a_dash(fake):
    result = runner.invoke(
        app, ["job", "run", "-"], input=JOB_YAML, env={"FEDERATION_ADDR": fake.url}
    )

    assert result.exit_code == 0, result.output
    assert json.loads(submitted(fake)[0]["body"])["id"] == "nightly-etl"


def test_a_spec_the_server_rejects_is_one_line_naming_the_field(fake, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(JOB_YAML.replace("count: 2", "count: 0"))

    result = federation(fake, "job", "run", str(path))

    line = assert_one_line_error(result)
    assert line == "Error: groups[0].count: must be ≥ 1 (invalid)"


KUBERNETES_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 2}
"""


@pytest.mark.parametrize(
    "filename, content, fragments",
    [
        ("mixed.yaml", KUBERNETES_DEPLOYMENT + "---\nid: b\n", ("holds 2 documents",)),
        ("broken.yaml", "id: x\ngroups: [\n", ("not valid YAML", "line")),
        ("broken.json", '{"id": "x",', ("not valid JSON", "line 1")),
        ("list.yaml", "- id: a\n- id: b\n", ("a job spec is a mapping", "not a list")),
        ("two.yaml", "id: a\n---\nid: b\n", ("holds 2 documents",)),
        ("empty.yaml", "\n", ("empty file",)),
    ],
)
def test_job_run_refuses_files_that_are_not_one_job_spec_before_calling_the_server(
    fake, tmp_path, filename, content, fragments
):
    path = tmp_path / filename
    path.write_text(content)

    result = federation(fake, "job", "run", str(path))

    assert_one_line_error(result, filename, *fragments)
    assert fake.requests == []


def test_job_run_with_a_missing_file_says_it_cannot_read_it(fake, tmp_path):
    result = federation(fake, "job", "run", str(tmp_path / "nope.yaml"))

    assert_one_line_error(result, "cannot read", "nope.yaml", "No such file")


# -- job status / list / stop --


def test_job_status_shows_the_job_its_groups_and_its_allocations(fake, job_file):
    federation(fake, "job", "run", str(job_file))

    result = federation(fake, "job", "status", "nightly-etl")

    assert result.exit_code == 0, result.output
    out = result.stdout
    fields = {line.split()[0]: line.split()[1:] for line in out.splitlines()[:9] if line.strip()}
    assert fields["ID"] == ["nightly-etl"]
    assert fields["Status"] == ["running"]
    assert fields["Allocations"] == ["running", "2"]
    assert "Task groups" in out and "500m" in out and "256 MiB" in out
    # Tables show the distinctive end of allocation ids and node names, not node ids.
    assert "-0-alloc" in out and "-1-alloc" in out and "rack1-a" in out


def test_job_status_as_json_is_the_job_record(fake, job_file):
    federation(fake, "job", "run", str(job_file))

    result = federation(fake, "job", "status", "nightly-etl", "-o", "json")

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["id"], job["version"], job["allocations"]) == ("nightly-etl", 1, {"running": 2})


def test_job_status_of_an_unknown_job_is_one_line_not_found(fake):
    result = federation(fake, "job", "status", "ghost")

    line = assert_one_line_error(result)
    assert line == 'Error: job "ghost" not found (not_found)'


def test_job_list_is_a_table_with_one_row_per_job(fake, job_file, tmp_path):
    federation(fake, "job", "run", str(job_file))
    other = tmp_path / "web.yaml"
    other.write_text("id: web\ntype: service\ngroups: [{name: api, count: 1}]\n")
    federation(fake, "job", "run", str(other))

    result = federation(fake, "job", "list")

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    header = next(row for row in rows if row and row[0] == "ID")
    assert header == ["ID", "TYPE", "PRIORITY", "QUEUE", "STATUS", "VERSION", "ALLOCATIONS"]
    by_id = {row[0]: row for row in rows if row and row[0] in ("nightly-etl", "web")}
    assert by_id["nightly-etl"][1:6] == ["batch", "50", "analytics", "running", "1"]
    assert by_id["web"][1] == "service"


@pytest.mark.parametrize(
    "args",
    [
        ("-o", "json", "job", "list"),
        ("job", "list", "-o", "json"),
        ("job", "list", "--output=JSON"),
    ],
)
def test_json_output_may_be_asked_for_globally_or_on_the_command(fake, job_file, args):
    federation(fake, "job", "run", str(job_file))

    result = federation(fake, *args)

    assert result.exit_code == 0, result.output
    assert [job["id"] for job in json.loads(result.stdout)] == ["nightly-etl"]


def test_an_empty_list_says_so_in_a_table_and_is_an_empty_array_in_json(fake):
    assert federation(fake, "job", "list").stdout == "No jobs.\n"
    assert json.loads(federation(fake, "-o", "json", "job", "list").stdout) == []


def test_job_stop_stops_the_job(fake, job_file):
    federation(fake, "job", "run", str(job_file))

    result = federation(fake, "job", "stop", "nightly-etl")

    assert result.exit_code == 0, result.output
    assert result.stdout == 'Job "nightly-etl" stopped: version 2, index 12.\n'
    (delete,) = [r for r in fake.requests if r["method"] == "DELETE"]
    assert delete["path"] == "/v1/jobs/nightly-etl"
    assert json.loads(federation(fake, "job", "status", "nightly-etl", "-o", "json").stdout)[
        "stopped"
    ]


def test_reads_can_go_through_the_leader_with_consistent(fake):
    federation(fake, "job", "list", "--consistent")

    assert fake.requests[-1]["query"] == {"consistent": "true"}


# -- nodes --


def test_node_list_shows_each_node_with_status_and_allocation(fake):
    result = federation(fake, "node", "list")

    assert result.exit_code == 0, result.output
    out = result.stdout
    # A short id prefix (node commands take one) beside the name that identifies the node.
    assert "6f1c2a9e-node-0001" not in out and "b07d44e1" in out
    row = next(line.split() for line in out.splitlines() if "rack1-a" in line)
    assert row[:6] == ["6f1c2a9e", "rack1-a", "default", "onprem", "r1", "ready"]
    assert "0/4000m" in row


def test_wide_output_shows_whole_ids_and_more_columns(fake, job_file):
    nodes = federation(fake, "node", "list", "-o", "wide").stdout
    assert "6f1c2a9e-node-0001" in nodes and "REGION" in nodes and "us-east-1" in nodes
    federation(fake, "job", "run", str(job_file))
    allocs = federation(fake, "-o", "wide", "alloc", "list").stdout
    assert "nightly-etl-worker-0-alloc" in allocs and "rack1-a (6f1c2a9e-node-0001)" in allocs


def test_node_list_as_json_is_the_node_records(fake):
    result = federation(fake, "node", "list", "-o", "json")

    nodes = json.loads(result.stdout)
    assert [n["name"] for n in nodes] == ["rack1-a", "aws-burst-1"]


@pytest.mark.parametrize("ref", ["b07d44e1-node-0002", "aws-burst-1", "b07d"])
def test_node_drain_accepts_an_id_a_name_or_a_unique_id_prefix(fake, ref):
    result = federation(fake, "node", "drain", ref)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('Node "aws-burst-1" (b07d44e1-node-0002) is draining')
    assert fake.nodes["b07d44e1-node-0002"]["draining"] is True
    assert fake.nodes["6f1c2a9e-node-0001"]["draining"] is False


def test_draining_an_unknown_node_is_one_line_not_found(fake):
    result = federation(fake, "node", "drain", "zzz")

    assert_one_line_error(result, 'no node with id or name "zzz"', "(not_found)")


def test_a_drained_node_shows_as_draining(fake):
    federation(fake, "node", "drain", "rack1-a")

    out = federation(fake, "node", "list").stdout
    assert "ready, draining" in next(line for line in out.splitlines() if "rack1-a" in line)


# -- allocations --


def test_alloc_list_filters_by_job(fake, job_file, tmp_path):
    federation(fake, "job", "run", str(job_file))
    other = tmp_path / "web.yaml"
    other.write_text("id: web\ntype: service\ngroups: [{name: api, count: 1}]\n")
    federation(fake, "job", "run", str(other))

    result = federation(fake, "alloc", "list", "--job", "web")

    assert result.exit_code == 0, result.output
    assert "-0-alloc" in result.stdout and "nightly-etl" not in result.stdout
    assert {"job": "web"} in [r["query"] for r in fake.requests]


def test_alloc_list_as_json_is_the_allocation_records(fake, job_file):
    federation(fake, "job", "run", str(job_file))

    allocs = json.loads(federation(fake, "-o", "json", "alloc", "list").stdout)

    assert sorted(a["index"] for a in allocs) == [0, 1]
    assert {a["client_status"] for a in allocs} == {"running"}


# -- addresses, auth and failures --


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_names_every_address_tried(fake):
    a, b = closed_port(), closed_port()
    addresses = f"http://127.0.0.1:{a},127.0.0.1:{b}"

    result = federation(fake, "--address", addresses, "--timeout", "1", "job", "list")

    line = assert_one_line_error(result, "could not reach any server", "connection refused")
    assert f"http://127.0.0.1:{a}, http://127.0.0.1:{b}" in line


def test_a_down_server_in_the_address_list_is_skipped(fake):
    addresses = f"http://127.0.0.1:{closed_port()},{fake.url}"

    result = federation(fake, "--address", addresses, "-o", "json", "node", "list")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2


def test_the_address_comes_from_FEDERATION_ADDR_and_the_option_wins(fake):
    refused = f"http://127.0.0.1:{closed_port()}"

    from_env = federation(fake, "--timeout", "0.5", "job", "list", FEDERATION_ADDR=refused)
    from_option = federation(fake, "--address", fake.url, "job", "list", FEDERATION_ADDR=refused)

    assert_one_line_error(from_env, refused)
    assert from_option.exit_code == 0, from_option.output


def test_the_token_is_sent_as_a_bearer_token_from_option_or_environment(fake):
    fake.token = "s3cret"

    by_option = federation(fake, "--token", "s3cret", "job", "list")
    by_env = federation(fake, "job", "list", FEDERATION_TOKEN="s3cret")

    assert by_option.exit_code == 0 and by_env.exit_code == 0
    assert {r["headers"]["authorization"] for r in fake.requests} == {"Bearer s3cret"}


@pytest.mark.parametrize(
    "token_args, expected",
    [
        ((), "Error: this server requires an API token: set FEDERATION_TOKEN (or pass "
             "--token); a dev cluster's is in .dev-data/api.token"),
        (("--token", "wrong"), "Error: wrong token (forbidden)"),
    ],
)
def test_a_missing_or_wrong_token_is_one_line(fake, token_args, expected):
    fake.token = "s3cret"

    result = federation(fake, *token_args, "node", "list")

    assert assert_one_line_error(result) == expected


def test_an_unknown_output_format_is_a_usage_error(fake):
    result = federation(fake, "-o", "yaml", "job", "list")

    assert result.exit_code == 2
    assert "yaml" in result.stderr and "Traceback" not in result.output
