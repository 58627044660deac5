"""The shared boot script, rendered by Terraform for every secret source: valid shell, the
right peers for each server, and no secret in it."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from tests.terraform.conftest import exec_start, parse_flags

SERVERS = [
    {"id": "fed-1", "address": "10.0.1.10"},
    {"id": "fed-2", "address": "10.0.2.10"},
    {"id": "fed-3", "address": "10.0.3.10"},
]

SOURCES = {
    "aws-ssm": {
        "raft_secret_ref": "/federation/fed/raft-secret",
        "api_token_ref": "/federation/fed/api-token",
        "aws_region": "eu-west-3",
    },
    "gcp-secret-manager": {
        "raft_secret_ref": "fed-raft-secret",
        "api_token_ref": "fed-api-token",
        "gcp_project": "acme-prod",
    },
    "file": {},
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_script_is_valid_bash(render_bootstrap, source: str) -> None:
    outputs = render_bootstrap(
        cluster_name="fed", servers=SERVERS, secret_source=source, **SOURCES[source]
    )
    for server_id, server in outputs["servers"].items():
        result = subprocess.run(
            ["bash", "-n"], input=server["script"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{source}/{server_id}: {result.stderr}"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_server_peers_with_the_others_only(render_bootstrap, source: str) -> None:
    outputs = render_bootstrap(
        cluster_name="fed",
        servers=SERVERS,
        raft_port=7001,
        http_port=7000,
        secret_source=source,
        **SOURCES[source],
    )
    for server in SERVERS:
        rendered = outputs["servers"][server["id"]]
        argv = shlex.split(exec_start(rendered["script"]))
        assert argv[:2] == ["/opt/federation/bin/federation", "server"]
        flags = parse_flags(argv)
        others = [f"{s['address']}:7001" for s in SERVERS if s["id"] != server["id"]]
        assert flags["--id"] == server["id"]
        assert flags["--raft"] == f"{server['address']}:7001"
        assert flags["--http"] == f"{server['address']}:7000"
        assert flags["--peers"].split(",") == others
        assert flags["--secret-file"] == "/etc/federation/raft-secret"
        assert flags["--token-file"] == "/etc/federation/api-token"
        assert "--insecure" not in argv
        assert rendered["unit"] in rendered["script"]
    assert outputs["api_endpoints"] == [f"http://{s['address']}:7000" for s in SERVERS]


def test_single_server_has_no_peers_flag(render_bootstrap) -> None:
    outputs = render_bootstrap(
        cluster_name="solo", servers=[{"id": "solo-1", "address": "10.9.0.5"}]
    )
    assert "--peers" not in shlex.split(exec_start(outputs["servers"]["solo-1"]["script"]))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("aws-ssm", ["boto3", "get_parameter", "'eu-west-3'", "'/federation/fed/raft-secret'"]),
        (
            "gcp-secret-manager",
            ["secretmanager.googleapis.com", "'acme-prod'", "'fed-api-token'", "Metadata-Flavor"],
        ),
        ("file", ["copy it to this host first"]),
    ],
)
def test_script_reads_secrets_from_its_source(
    render_bootstrap, source: str, expected: list[str]
) -> None:
    outputs = render_bootstrap(
        cluster_name="fed", servers=SERVERS, secret_source=source, **SOURCES[source]
    )
    script = outputs["servers"]["fed-1"]["script"]
    for fragment in expected:
        assert fragment in script, f"{fragment!r} missing from the {source} script"
    others = set(SOURCES) - {source}
    markers = {
        "aws-ssm": "get_parameter",
        "gcp-secret-manager": "secretmanager",
        "file": "copy it to",
    }
    for other in others:
        assert markers[other] not in script


def test_pip_index_and_package_pin_reach_the_install_step(render_bootstrap) -> None:
    outputs = render_bootstrap(
        cluster_name="fed",
        servers=SERVERS,
        package_spec="federation[aws]==0.1.0",
        pip_index_url="https://pypi.internal.example/simple",
    )
    script = outputs["servers"]["fed-2"]["script"]
    assert "--index-url 'https://pypi.internal.example/simple' 'federation[aws]==0.1.0'" in script


@pytest.mark.parametrize(
    "inputs",
    [
        {"secret_source": "aws-ssm"},  # no parameter names
        {"secret_source": "vault"},
        {"servers": [{"id": "a", "address": "10.0.0.1"}, {"id": "a", "address": "10.0.0.2"}]},
        {"data_dir": "relative/path"},
        {"package_spec": "federation; rm -rf /"},
    ],
)
def test_bad_inputs_are_rejected(render_bootstrap, inputs: dict[str, object]) -> None:
    arguments = {"cluster_name": "fed", "servers": SERVERS, **inputs}
    with pytest.raises(AssertionError, match="Invalid value for variable"):
        render_bootstrap(**arguments)
