"""Job versions on three real servers: each update keeps the previous spec, every server
holds the same history (it is replicated state), a revert submits a kept spec again as a
new version, and bad input is a 4xx naming the field. Through the API and the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from federation.cli.main import app
from tests.harness import Cluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("versions"), size=3).start()  # loopback, no token
    try:
        c.wait_leader(30)
        yield c
    finally:
        c.stop()


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=10)


def spec(count: int, command: str = "sleep") -> dict:
    return {"id": "versioned", "type": "service", "groups": [{
        "name": "web", "count": count, "resources": {"cpu": 100, "memory": 64},
        "task": {"command": [command, "600"]}}]}


def cli(cluster: Cluster, *args: str):
    return CliRunner().invoke(app, list(args), env={
        "FEDERATION_ADDR": ",".join(cluster.urls), "FEDERATION_TIMEOUT": "20"})


def test_updates_are_kept_as_versions_on_every_server_and_one_can_be_run_again(cluster):
    leader = cluster.wait_leader()
    with api(leader.url) as client:
        for count in (1, 2, 3):
            assert client.post("/v1/jobs", json=spec(count)).status_code == 201
        assert client.post("/v1/jobs", json=spec(3, "/bin/sleep")).status_code == 201

    def versions_on(url: str) -> list[dict]:
        with api(url) as client:
            return client.get("/v1/jobs/versioned/versions").json()["versions"]

    for server in cluster.servers:  # followers too: the history is in the replicated state
        shown = wait_for(lambda s=server: (v := versions_on(s.url)) and len(v) == 4 and v,
                         15, f"four versions on {server.id}")
        assert [v["version"] for v in shown] == [4, 3, 2, 1]
        assert shown[0]["current"] and not shown[1]["current"]
        assert shown[0]["changes"] == ["groups[0].task.command"]
        assert shown[1]["changes"] == ["groups[0].count"]
        assert shown[3]["spec"]["groups"][0]["count"] == 1

    history = cli(cluster, "job", "history", "versioned")
    assert history.exit_code == 0, history.output
    assert "groups[0].count" in history.stdout and "current" in history.stdout

    reverted = cli(cluster, "job", "revert", "versioned", "2")
    assert reverted.exit_code == 0, reverted.output
    assert "reverted to the spec of version 2: now version 5" in reverted.stdout
    with api(cluster.servers[0].url) as client:
        job = client.get("/v1/jobs/versioned", params={"consistent": "true"}).json()
    assert job["version"] == 5 and job["groups"][0]["count"] == 2
    assert job["groups"][0]["task"]["command"] == ["sleep", "600"]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"version": 99}, 404, "version"),
    ({"version": "2"}, 400, "version"),
    ({"version": 0}, 400, "version"),
    ({"version": True}, 400, "version"),
    ({}, 400, "version"),
    ({"version": 1, "extra": 1}, 400, "version"),
    ([1], 400, "version"),
])
def test_a_bad_revert_is_refused_naming_the_field(cluster, body, status, field):
    leader = cluster.wait_leader()
    with api(leader.url) as client:
        client.post("/v1/jobs", json=spec(1))
        before = client.get("/v1/jobs/versioned").json()["version"]
        answer = client.post("/v1/jobs/versioned/revert", json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["field"] == field
        assert client.get("/v1/jobs/versioned").json()["version"] == before
        missing = client.post("/v1/jobs/nope/revert", json={"version": 1})
        assert missing.status_code == 404


def test_the_cli_says_which_versions_are_kept_when_one_is_not(cluster):
    cluster.wait_leader()
    result = cli(cluster, "job", "revert", "versioned", "99")
    assert result.exit_code == 1
    assert "has no version 99 (kept: " in result.stderr
