"""`federation job logs`: every current copy's output from real agents, each line prefixed
with the copy's short allocation id; by group, stream and tail."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from federation.cli.main import app
from tests.agent.conftest import API_TOKEN, Fed
from tests.harness import wait_for

# Five numbered lines on stdout, one on stderr, then it stays up.
CHATTY = ("import os, sys, time\n"
          "for i in range(5): print(os.environ['FEDERATION_GROUP'], 'line', i, flush=True)\n"
          "print('warning from', os.environ['FEDERATION_ALLOC_INDEX'], file=sys.stderr, "
          "flush=True)\n"
          "time.sleep(600)\n")


def group(name: str, count: int) -> dict:
    return {"name": name, "count": count, "resources": {"cpu": 100, "memory": 128},
            "task": {"command": [sys.executable, "-c", CHATTY], "kill_timeout": "1s"}}


def cli(fed: Fed, *args: str):
    return CliRunner().invoke(app, list(args), env={
        "FEDERATION_ADDR": fed.url, "FEDERATION_TOKEN": API_TOKEN, "FEDERATION_TIMEOUT": "20"})


def test_job_logs_prefix_each_copys_lines_with_its_short_id(fed: Fed, agents) -> None:
    agents("a1")
    fed.run({"id": "chatty", "type": "service", "groups": [group("web", 2), group("db", 1)]})
    allocs = fed.wait_allocs("chatty", 3, "running")
    short = {a["id"][-8:]: a["group"] for a in allocs}

    def complete() -> str | None:
        out = cli(fed, "job", "logs", "chatty").stdout
        return out if out.count("line 4") == 3 else None

    out = wait_for(complete, 30, "every copy's five lines")
    lines = out.splitlines()
    assert len(lines) == 15
    for line in lines:
        prefix, group_name, _, _ = line.split()
        assert short[prefix] == group_name  # each line carries its copy's short id
    assert [line.split()[0] for line in lines] == sorted(
        (line.split()[0] for line in lines),
        key=lambda p: (short[p], [a["index"] for a in allocs if a["id"].endswith(p)][0]))

    tail = cli(fed, "job", "logs", "chatty", "--group", "web", "--tail", "2").stdout
    assert sorted(line.split(maxsplit=1)[1] for line in tail.splitlines()) == [
        "web line 3", "web line 3", "web line 4", "web line 4"]
    errors = cli(fed, "job", "logs", "chatty", "--stderr", "--group", "db").stdout
    (db,) = [p for p, g in short.items() if g == "db"]
    assert errors == f"{db} warning from 0\n"

    unknown = fed.http.get("/v1/jobs/chatty/logs", params={"group": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "group"
    for params, field in (({"tail": "-1"}, "tail"), ({"stream": "both"}, "stream")):
        bad = fed.http.get("/v1/jobs/chatty/logs", params=params)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field
    assert cli(fed, "job", "logs", "missing").exit_code == 1
