"""A cloud instance's agent registers under the id its provider lists the instance by.

The identity comes from the cloud's metadata service (EC2 IMDSv2, the GCE metadata server),
served here by ``tests.fakes.metadata_server`` on 127.0.0.1; the node it registers is then
counted as joined by the autoscaler's reconciler, so the instance is not terminated.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from federation.agent.agent import AgentConfig, registration
from federation.agent.metadata import URL_ENV, InstanceIdentity, MetadataUnavailable, discover
from federation.api.schemas import NodeRegistration, validate_model
from federation.autoscaler.reconciler import reconcile
from federation.providers.aws import provision as aws_provision
from federation.providers.base import Bootstrap
from federation.providers.gcp import GCPProvider
from federation.providers.gcp import provision as gcp_provision
from federation.specs.pool import PoolSpec
from federation.state.machine import StateMachine
from tests.fakes.gce_server import FakeGCE
from tests.fakes.metadata_server import FakeMetadata

AWS_ITEMS = {
    "instance-id": "i-0abc123def4567890",
    "placement/availability-zone": "us-east-1b",
    "placement/region": "us-east-1",
    "instance-type": "m5.large",
}
GCP_ITEMS = {
    "name": "fed-gcp-burst-0123456789-0",
    "zone": "projects/123456789012/zones/us-central1-b",
    "machine-type": "projects/123456789012/machineTypes/e2-standard-4",
}
ITEMS = {"aws": AWS_ITEMS, "gcp": GCP_ITEMS}
EXPECTED = {
    "aws": InstanceIdentity("aws", "i-0abc123def4567890", "us-east-1b", "us-east-1", "m5.large"),
    "gcp": InstanceIdentity("gcp", "us-central1-b/fed-gcp-burst-0123456789-0", "us-central1-b",
                            "us-central1", "e2-standard-4"),
}
POOLS = {
    "aws": {"name": "burst", "provider": "aws", "region": "us-east-1",
            "zones": ["us-east-1a", "us-east-1b"], "max_nodes": 10,
            "settings": {"join_grace": "10m"}},
    "gcp": {"name": "gcp-burst", "provider": "gcp", "region": "us-central1",
            "zones": ["us-central1-a", "us-central1-b"], "max_nodes": 10,
            "settings": {"project": "proj", "join_grace": "10m"}},
}  # fmt: skip
_ids = itertools.count()


@pytest.fixture
def metadata(request: pytest.FixtureRequest) -> Iterator[FakeMetadata]:
    cloud = request.param
    with FakeMetadata(cloud, ITEMS[cloud]) as fake:
        yield fake


# -- discovery -------------------------------------------------------------------------------
@pytest.mark.parametrize("metadata", ["aws", "gcp"], indirect=True)
def test_discovery_reads_the_provider_side_identity(metadata):
    assert discover(metadata.cloud, metadata.url) == EXPECTED[metadata.cloud]


@pytest.mark.parametrize("metadata", ["aws"], indirect=True)
def test_ec2_reads_go_through_one_imdsv2_session_token(metadata):
    discover("aws", metadata.url)
    assert metadata.requests[0] == ("PUT", "/latest/api/token")
    assert [m for m, _ in metadata.requests].count("PUT") == 1
    assert len(metadata.requests) == 1 + len(AWS_ITEMS)


@pytest.mark.parametrize("metadata", ["aws", "gcp"], indirect=True)
def test_the_address_can_come_from_the_environment(metadata, monkeypatch):
    monkeypatch.setenv(URL_ENV, metadata.url)
    assert discover(metadata.cloud) == EXPECTED[metadata.cloud]


@pytest.mark.parametrize("metadata", ["aws", "gcp"], indirect=True)
def test_unavailable_answers_are_retried_until_the_service_answers(metadata):
    metadata.fail_next = 3
    assert discover(metadata.cloud, metadata.url, deadline=10) == EXPECTED[metadata.cloud]
    assert metadata.fail_next == 0


@pytest.mark.parametrize(("cloud", "item"), [
    ("aws", "instance-id"), ("aws", "placement/availability-zone"), ("aws", "placement/region"),
    ("aws", "instance-type"), ("gcp", "name"), ("gcp", "zone"), ("gcp", "machine-type"),
])  # fmt: skip
def test_a_missing_item_fails_at_once_naming_it(cloud, item):
    items = {k: v for k, v in ITEMS[cloud].items() if k != item}
    with FakeMetadata(cloud, items) as fake:
        started = time.monotonic()
        with pytest.raises(MetadataUnavailable, match=f"cannot read {item} .*HTTP 404"):
            discover(cloud, fake.url, deadline=30)
        assert time.monotonic() - started < 5  # final: not retried until the deadline


def test_a_gce_answer_without_the_metadata_flavor_header_is_not_trusted():
    with FakeMetadata("gcp", GCP_ITEMS, flavor_header=False) as fake:
        with pytest.raises(MetadataUnavailable, match="name .*Metadata-Flavor"):
            discover("gcp", fake.url)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["silent_port", "closed_port"])
@pytest.mark.parametrize(("cloud", "first"), [("aws", "IMDSv2 session token"), ("gcp", "name")])
def test_a_service_that_does_not_answer_fails_within_the_deadline(request, where, cloud, first):
    port = request.getfixturevalue(where)
    started = time.monotonic()
    with pytest.raises(MetadataUnavailable, match=f"cannot read .*{first}.*still after 1s"):
        discover(cloud, f"http://127.0.0.1:{port}", timeout=0.3, deadline=1.0)
    assert time.monotonic() - started < 4


def test_options_given_explicitly_win_over_discovered_values():
    given = {"provider": "", "region": "", "zone": "us-east-1a", "instance_type": "",
             "instance_id": ""}
    assert EXPECTED["aws"].over(given) == {
        "provider": "aws", "region": "us-east-1", "zone": "us-east-1a",
        "instance_type": "m5.large", "instance_id": "i-0abc123def4567890",
    }  # fmt: skip


# -- the agent command -----------------------------------------------------------------------
class _Recorder:
    """An HTTP server that records every request and answers 503."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.paths.append(self.path)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_the_agent_exits_naming_what_it_could_not_read_and_registers_nothing(tmp_path):
    items = {k: v for k, v in AWS_ITEMS.items() if k != "instance-type"}
    with FakeMetadata("aws", items) as fake, _Recorder() as servers:
        port = servers.server.server_address[1]
        env = {**os.environ, URL_ENV: fake.url, "FEDERATION_TOKEN": "t",
               "OTEL_TRACES_EXPORTER": "none"}
        done = subprocess.run(
            [sys.executable, "-m", "federation.cli.main", "agent",
             "--server", f"http://127.0.0.1:{port}", "--data-dir", str(tmp_path / "agent"),
             "--pool", "burst", "--instance-metadata", "aws"],
            env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "cannot read instance-type" in done.stderr
        assert "EC2 instance metadata service" in done.stderr
        assert servers.paths == []


def test_an_unknown_metadata_cloud_is_a_usage_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "federation.cli.main", "agent", "--server", "http://127.0.0.1:9",
         "--data-dir", str(tmp_path), "--instance-metadata", "azure"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--instance-metadata" in done.stderr


# -- the reconciler counts the node as joined ------------------------------------------------
def cmd(type_: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"id": f"c{next(_ids)}", "type": type_, "time": t, **fields}


def listed_instance(cloud: str, spec: PoolSpec):
    """The instance as the provider's own ``list_instances`` conversion reports it."""
    if cloud == "aws":
        return aws_provision.to_instance(spec, {
            "InstanceId": AWS_ITEMS["instance-id"], "InstanceType": "m5.large",
            "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "us-east-1b"},
        })  # fmt: skip
    raw = SimpleNamespace(
        name=GCP_ITEMS["name"], labels={}, network_interfaces=[], status="RUNNING",
        machine_type="zones/us-central1-b/machineTypes/e2-standard-4", scheduling=None)
    return gcp_provision.to_instance(spec, "us-central1-b", raw)


def machine_with_launch(cloud: str, spec: PoolSpec, instance_id: str) -> StateMachine:
    machine = StateMachine()
    assert machine.apply(cmd("pool.apply", 0.0, spec=POOLS[cloud]))["ok"]
    assert machine.apply(cmd("launch.begin", 0.0, launch={
        "token": "tok-1", "pool": spec.name, "provider": cloud, "instance_type": "x",
        "count": 1, "zones": list(spec.zones), "reason": "test"}))["ok"]
    assert machine.apply(cmd("launch.end", 10.0, token="tok-1", instances=[instance_id]))["ok"]
    return machine


def register(machine: StateMachine, config: AgentConfig) -> None:
    body = validate_model(NodeRegistration, registration(config, {}))
    node = {**body, "id": f"n{next(_ids)}", "token_hash": "h"}
    assert machine.apply(cmd("node.register", 20.0, node=node))["ok"]


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
@pytest.mark.parametrize(("registered_with", "never_joined"), [
    ("metadata", False),
    ("hostname only", True),
])  # fmt: skip
def test_a_node_registered_from_metadata_counts_as_its_instance_joined(
        cloud, registered_with, never_joined):
    spec = PoolSpec.model_validate(POOLS[cloud])
    instance = listed_instance(cloud, spec)
    machine = machine_with_launch(cloud, spec, instance.id)
    config = AgentConfig(servers=["http://127.0.0.1:9"], data_dir="unused", pool=spec.name,
                         name="host-1", cpu_milli=2000, memory_mib=4096)
    if registered_with == "metadata":
        with FakeMetadata(cloud, ITEMS[cloud]) as fake:
            found = discover(cloud, fake.url).over({})
        config = dataclasses.replace(config, **found)
    register(machine, config)
    drift = reconcile(machine, spec, [instance], now=10.0 + 3600, first_seen={})
    assert [d.kind for d in drift] == (["never_joined"] if never_joined else [])
    node = next(iter(machine.nodes.values()))
    if not never_joined:
        assert (node["instance_id"], node["provider"], node["zone"], node["instance_type"]) == (
            instance.id, cloud, instance.zone, instance.instance_type)


# -- a real agent process, a real master, the gcp provider on the fake GCE -------------------
def test_an_agent_on_a_launched_gce_instance_registers_as_that_instance(
        fed, agents, monkeypatch):
    gce = FakeGCE().start()
    try:
        spec = PoolSpec.model_validate({
            **POOLS["gcp"],
            "settings": {"project": "proj", "endpoint_url": gce.url, "anonymous": True,
                         "dry_run": True},
        })
        provider_ids = _launch_one(gce, spec)
        fed.commit({"type": "pool.apply", "time": time.time(), "spec": spec.model_dump()})
        fed.commit({"type": "launch.begin", "time": time.time(), "launch": {
            "token": "tok-1", "pool": spec.name, "provider": "gcp",
            "instance_type": "e2-standard-4", "count": 1, "zones": ["us-central1-b"],
            "reason": "test"}})
        fed.commit({"type": "launch.end", "time": time.time(), "token": "tok-1",
                    "instances": provider_ids})
        ((_, zone, name), raw), = gce.instances.items()
        machine_type = raw["machineType"].rsplit("/", 1)[-1]
        items = {"name": name, "zone": f"projects/123456789012/zones/{zone}",
                 "machine-type": f"projects/123456789012/machineTypes/{machine_type}"}
        with FakeMetadata("gcp", items) as fake:
            monkeypatch.setenv(URL_ENV, fake.url)
            agent = agents("gce-host", "--pool", spec.name, "--instance-metadata", "gcp")
            node = fed.master.machine.nodes[agent.node_id]
        assert node["instance_id"] == provider_ids[0]
        assert (node["provider"], node["zone"], node["region"], node["instance_type"]) == (
            "gcp", "us-central1-b", "us-central1", "e2-standard-4")
        listed = GCPProvider().list_instances(spec)
        assert [i.id for i in listed] == provider_ids
        assert reconcile(fed.master.machine, spec, listed, now=time.time() + 3600,
                         first_seen={}) == []
    finally:
        gce.stop()


def _launch_one(gce: FakeGCE, spec: PoolSpec) -> list[str]:
    """One instance launched by the gcp provider, in the pool's second zone."""
    gce.exhausted_zones.add("us-central1-a")
    result = GCPProvider().launch(
        spec, "e2-standard-4", 1, "tok-1",
        Bootstrap(servers=("http://127.0.0.1:9",), join_token="join-secret"))
    return [i.id for i in result.instances]
