"""Member clusters are added, listed and removed through the API and CLI, replicated through
Raft, and their kubeconfig's credentials never leave the servers in the clear."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from federation.members.sealing import SealBroken, Sealer
from federation.state.machine import StateMachine
from tests.harness import Cluster
from tests.kubernetes.conftest import cli
from tests.kubernetes.fake_apiserver import FakeKubeAPIServer

TOKEN = "s3cr3t-member-token-0123456789"


def _record(name: str = "east", sealed: str = "gAAAA-sealed") -> dict:
    return {"name": name, "pool": name, "context": name, "server": "https://10.0.0.1",
            "image": "busybox:1.36", "labels": {"team": "ml"}, "kubeconfig_sealed": sealed}


def test_the_state_machine_keeps_clusters_and_a_removal_marks_their_nodes_down():
    sm = StateMachine()
    assert sm.apply({"id": "c1", "type": "cluster.apply", "cluster": _record()})["ok"]
    again = sm.apply({"id": "c2", "type": "cluster.apply", "cluster": _record()})
    assert again["value"]["changed"] is False
    node = {"id": "n1", "name": "east-n1", "token_hash": "h", "provider": "kubernetes",
            "cluster": "east", "capacity": {"cpu_milli": 1000, "memory_mib": 1024, "gpu": 0}}
    assert sm.apply({"id": "r1", "type": "node.register", "node": node})["ok"]
    bad = sm.apply({"id": "c3", "type": "cluster.apply", "cluster": {**_record(), "name": "Bad"}})
    assert bad["ok"] is False and bad["error"]["field"] == "cluster.name"
    restored = StateMachine.from_snapshot(json.loads(json.dumps(sm.snapshot())))
    assert restored.clusters["east"]["kubeconfig_sealed"] == "gAAAA-sealed"
    removed = sm.apply({"id": "c4", "type": "cluster.delete", "name": "east"})
    assert removed["value"]["nodes_down"] == 1
    assert sm.nodes["n1"]["status"] == "down" and "east" not in sm.clusters


def test_a_sealed_secret_opens_only_with_the_same_cluster_secret():
    sealed = Sealer("secret-a").seal("token: abc")
    assert "abc" not in sealed
    assert Sealer("secret-a").unseal(sealed) == "token: abc"
    with pytest.raises(SealBroken):
        Sealer("secret-b").unseal(sealed)


def test_add_list_remove_through_the_cli_without_the_secret_ever_coming_back(
        server: Cluster, tmp_path: Path):
    fake = FakeKubeAPIServer(name="east", token=TOKEN)  # not started: only its kubeconfig
    fake.port = 6443
    kubeconfig = tmp_path / "east.kubeconfig"
    kubeconfig.write_text(fake.kubeconfig())
    url = server.servers[0].url
    out = cli(url, "cluster", "add", "east", "--kubeconfig", str(kubeconfig),
              "--pool", "k8s-east", "--labels", "team=ml,tier=gold")
    assert 'Cluster "east" added' in out.stdout and TOKEN not in out.stdout
    listing = cli(url, "-o", "json", "cluster", "list").stdout
    (view,) = json.loads(listing)
    assert view["name"] == "east" and view["pool"] == "k8s-east"
    assert view["labels"] == {"team": "ml", "tier": "gold"}
    assert view["server"] == "http://127.0.0.1:6443" and view["context"] == "east"
    assert TOKEN not in listing and "kubeconfig" not in listing
    assert "east" in cli(url, "cluster", "list").stdout
    for path in ("/v1/clusters", "/v1/clusters/east", "/v1/snapshot"):
        body = httpx.get(url + path, timeout=5).text
        assert TOKEN not in body, path
    # Nothing the server wrote to disk (Raft journal, snapshots) holds the token either.
    for file in (tmp_path / "servers").rglob("*"):
        if file.is_file():
            assert TOKEN.encode() not in file.read_bytes(), file
    out = cli(url, "cluster", "remove", "east")
    assert 'Cluster "east" removed' in out.stdout
    assert json.loads(cli(url, "-o", "json", "cluster", "list").stdout) == []


def test_bad_input_is_refused_naming_the_field(server: Cluster):
    url = server.servers[0].url + "/v1/clusters/"
    fake = FakeKubeAPIServer(name="west")
    cases = [
        ("west", {"kubeconfig": "not: [a kubeconfig"}, "kubeconfig"),
        ("west", {"kubeconfig": fake.kubeconfig(), "context": "nope"}, "context"),
        ("West_1", {"kubeconfig": fake.kubeconfig()}, "name"),
        ("federation", {"kubeconfig": fake.kubeconfig()}, "name"),
        ("west", {"kubeconfig": fake.kubeconfig(), "colour": "blue"}, "colour"),
        ("west", {"kubeconfig": fake.kubeconfig(), "labels": {"a b": "c"}}, "labels.a b"),
        ("west", {}, "kubeconfig"),
    ]
    # Nothing in a kubeconfig may make the servers run a program or read their own files.
    for user in ({"exec": {"command": "/bin/sh", "args": ["-c", "id"]}},
                 {"auth-provider": {"name": "gcp"}}, {"tokenFile": "/etc/shadow"},
                 {"client-certificate": "/etc/passwd", "client-key": "/etc/passwd"}):
        config = json.loads(fake.kubeconfig())
        config["users"][0]["user"] = user
        cases.append(("west", {"kubeconfig": json.dumps(config)}, "kubeconfig"))
    config = json.loads(fake.kubeconfig())
    config["clusters"][0]["cluster"]["certificate-authority"] = "/var/lib/federation/secret"
    cases.append(("west", {"kubeconfig": json.dumps(config)}, "kubeconfig"))
    pool = httpx.put(server.servers[0].url + "/v1/pools/burst",
                     json={"name": "burst", "provider": "local", "max_nodes": 2}, timeout=5)
    assert pool.status_code == 200, pool.text
    cases.append(("west", {"kubeconfig": fake.kubeconfig(), "pool": "burst"}, "pool"))
    for name, body, field in cases:
        response = httpx.put(url + name, json=body, timeout=5)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["field"] == field, response.text
    assert httpx.delete(url + "nowhere", timeout=5).status_code == 404
