"""The on-prem module renders units, boot scripts, an inventory and the files to copy for
existing hosts; secrets only ever appear in its sensitive output."""

from __future__ import annotations

import shlex

import pytest
import yaml

from tests.terraform.conftest import exec_start, parse_flags

RAFT_SECRET = "onprem-raft-secret-5e1d7c"
API_TOKEN = "onprem-api-token-9b4f2a"
SERVERS = [
    {"name": "m1", "address": "10.20.0.11"},
    {"name": "m2", "address": "10.20.0.12"},
    {"name": "m3", "address": "10.20.0.13"},
]
AGENTS = [
    {
        "name": "r1-n1",
        "address": "10.20.1.1",
        "rack": "r1",
        "cpu_milli": 16000,
        "memory_mib": 65536,
    },
    {
        "name": "r2-n1",
        "address": "10.20.2.1",
        "rack": "r2",
        "pool": "gpu",
        "labels": {"gpu": "a100"},
    },
]
OUTPUTS = [
    "api_endpoints",
    "server_units",
    "server_scripts",
    "agent_units",
    "inventory",
    "host_files",
]
SECRETS = {"raft_secret": RAFT_SECRET, "api_token": API_TOKEN}


@pytest.fixture
def rack(render_module):
    return render_module(
        "onprem",
        {"cluster_name": "dc1", "servers": SERVERS, "agents": AGENTS},
        OUTPUTS,
        secrets=SECRETS,
    )


def test_secrets_only_in_the_sensitive_host_files(rack) -> None:
    assert [n for n, o in rack.outputs.items() if o["sensitive"]] == ["host_files"]
    for name, output in rack.outputs.items():
        if not output["sensitive"]:
            assert RAFT_SECRET not in str(output["value"]), name
            assert API_TOKEN not in str(output["value"]), name
    assert RAFT_SECRET not in rack.printed and API_TOKEN not in rack.printed
    files = rack.value("host_files")
    assert files["m2"]["/etc/federation/raft-secret"] == {"content": RAFT_SECRET, "mode": "0640"}
    assert files["m2"]["/etc/federation/api-token"] == {"content": API_TOKEN, "mode": "0640"}
    assert files["r1-n1"]["/etc/federation/agent.env"] == {
        "content": f"FEDERATION_TOKEN={API_TOKEN}\n",
        "mode": "0600",
    }
    assert "/etc/federation/raft-secret" not in files["r1-n1"]


def test_server_units_peer_with_the_other_masters(rack) -> None:
    for server in SERVERS:
        unit = rack.value("server_units")[server["name"]]
        script = rack.value("server_scripts")[server["name"]]
        assert unit in script
        flags = parse_flags(shlex.split(exec_start(script)))
        assert flags["--id"] == server["name"]
        assert flags["--raft"] == f"{server['address']}:4781"
        assert flags["--peers"].split(",") == [
            f"{s['address']}:4781" for s in SERVERS if s is not server
        ]
        assert (
            rack.value("host_files")[server["name"]][
                "/etc/systemd/system/federation-server.service"
            ]["content"]
            == unit
        )


def test_agent_units_join_every_master_with_pool_labels_and_capacity(rack) -> None:
    endpoints = [f"http://{s['address']}:4780" for s in SERVERS]
    assert rack.value("api_endpoints") == endpoints
    units = rack.value("agent_units")
    line = next(x for x in units["r1-n1"].splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[:2] == ["/opt/federation/bin/federation", "agent"]
    assert parse_flags(argv) == {
        "--server": ",".join(endpoints),
        "--data-dir": "/var/lib/federation-agent",
        "--name": "r1-n1",
        "--pool": "onprem",
        "--labels": "rack=r1",
        "--cpu": "16000",
        "--memory": "65536",
    }
    line = next(x for x in units["r2-n1"].splitlines() if x.startswith("ExecStart="))
    flags = parse_flags(shlex.split(line.removeprefix("ExecStart=")))
    assert flags["--pool"] == "gpu" and flags["--labels"] == "gpu=a100,rack=r2"
    assert "--cpu" not in flags and "--memory" not in flags
    assert "EnvironmentFile=/etc/federation/agent.env" in units["r2-n1"]


def test_inventory_groups_masters_and_agents(rack) -> None:
    inventory = yaml.safe_load(rack.value("inventory"))["all"]
    assert inventory["vars"]["federation_cluster"] == "dc1"
    servers = inventory["children"]["federation_servers"]["hosts"]
    agents = inventory["children"]["federation_agents"]["hosts"]
    assert {n: h["ansible_host"] for n, h in servers.items()} == {
        s["name"]: s["address"] for s in SERVERS
    }
    assert servers["m1"]["federation_peers"] == ["10.20.0.12:4781", "10.20.0.13:4781"]
    assert agents["r2-n1"] == {
        "ansible_host": "10.20.2.1",
        "federation_pool": "gpu",
        "federation_labels": {"gpu": "a100", "rack": "r2"},
        "federation_cpu_milli": None,
        "federation_memory_mib": None,
        "federation_agent_unit": "federation-agent.service",
    }


def test_agents_only_rack_joins_external_masters(render_module) -> None:
    rendered = render_module(
        "onprem",
        {
            "cluster_name": "dc1",
            "agents": AGENTS[:1],
            "server_endpoints": ["http://10.42.1.10:4780", "http://10.42.2.10:4780"],
        },
        OUTPUTS,
        secrets={"api_token": API_TOKEN},
    )
    assert rendered.value("server_units") == {}
    assert (
        "--server http://10.42.1.10:4780,http://10.42.2.10:4780 "
        in rendered.value("agent_units")["r1-n1"]
    )


@pytest.mark.parametrize(
    ("inputs", "secrets"),
    [
        ({"servers": SERVERS}, {"api_token": API_TOKEN}),  # masters without a Raft secret
        ({"agents": AGENTS}, SECRETS),  # agents without any master
        ({"servers": SERVERS}, {"raft_secret": "short", "api_token": API_TOKEN}),
        ({"servers": SERVERS[:2]}, SECRETS),  # an even number of masters
    ],
)
def test_bad_inputs_are_rejected(render_module, inputs, secrets) -> None:
    with pytest.raises(AssertionError, match="Invalid value for variable"):
        render_module("onprem", {"cluster_name": "dc1", **inputs}, OUTPUTS, secrets=secrets)
