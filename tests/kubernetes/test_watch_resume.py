"""The connector's watches resume after a dropped connection from the last resourceVersion
seen (nothing lost, nothing applied twice) and list again after a 410 Expired: the real
`kubernetes` client against the fake member API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.members.connector import Connector
from federation.members.kube import KubeAPI
from tests.harness import wait_for
from tests.kubernetes.fake_apiserver import FakeKubeAPIServer


@pytest.fixture
def watched(tmp_path: Path):
    fake = FakeKubeAPIServer(name="east", tls_dir=str(tmp_path / "tls"),
                             bookmark_interval=0.2).start()
    for i in range(3):
        fake.add_node(f"east-{i + 1}")
    fake.add_pod("dns", "east-1")
    record = {"name": "east", "pool": "east", "labels": {}, "image": "busybox"}
    connector = Connector(record, KubeAPI(fake.kubeconfig()), link=None,  # type: ignore[arg-type]
                          ttl=10).start(sync=False)
    wait_for(connector.synced, 10, "the first lists")
    yield fake, connector
    connector.stop()
    fake.stop()


def _same(fake: FakeKubeAPIServer, connector: Connector) -> bool:
    nodes = connector.mirrors["nodes"].items
    pods = connector.mirrors["pods"].items
    with fake.lock:
        want_nodes = {f"/{n}": o["metadata"]["resourceVersion"] for n, o in fake.nodes.items()}
        want_pods = {f"{ns}/{n}": o["metadata"]["resourceVersion"]
                     for (ns, n), o in fake.pods.items()}
    return ({k: o["metadata"]["resourceVersion"] for k, o in list(nodes.items())} == want_nodes
            and {k: o["metadata"]["resourceVersion"] for k, o in list(pods.items())}
            == want_pods)


def _changes(fake: FakeKubeAPIServer, tag: str) -> int:
    """Six changes: 2 node events and 4 pod events."""
    fake.add_node(f"east-{tag}")
    fake.set_node_ready("east-1", tag != "ready")
    fake.add_pod(f"job-{tag}", "east-2", phase="Pending")
    fake.set_pod_phase("kube-system", f"job-{tag}", "Running")
    fake.add_pod(f"gone-{tag}", "east-3")
    with fake.lock:
        fake._delete_pod("kube-system", f"gone-{tag}")
    return 2 + 1 + 1 + 2 + 1  # add_pod(Running) is a create and a status change


def test_a_dropped_watch_resumes_from_the_last_version_without_loss_or_repeats(watched):
    fake, connector = watched
    nodes, pods = connector.mirrors["nodes"], connector.mirrors["pods"]
    applied = nodes.applied + pods.applied
    fake.drop_watches()
    expected = _changes(fake, "a")
    wait_for(lambda: _same(fake, connector), 10, "the changes after a dropped watch")
    # The server went away altogether while things changed: resumed, not listed again.
    fake.go_offline()
    expected += _changes(fake, "b")
    resume_from = {kind: m.resource_version for kind, m in connector.mirrors.items()}
    fake.go_online()
    wait_for(lambda: _same(fake, connector), 20, "the changes made while it was away")
    assert nodes.applied + pods.applied - applied == expected
    assert nodes.stale == pods.stale == 0
    assert nodes.lists == pods.lists == 1 and connector.expired == 0
    watches = [path for method, path in fake.requests if "watch=" in path]
    assert any(f"resourceVersion={resume_from['nodes']}" in p and "/nodes" in p
               for p in watches), (resume_from, watches)
    assert all("allowWatchBookmarks=true" in p for p in watches)


def test_a_410_makes_the_connector_list_again_and_converge(watched):
    fake, connector = watched
    nodes, pods = connector.mirrors["nodes"], connector.mirrors["pods"]
    fake.go_offline()
    _changes(fake, "c")
    fake.compact()  # the versions it would resume from are gone
    fake.go_online()
    wait_for(lambda: nodes.lists == 2 and pods.lists == 2, 20, "a relist after 410")
    wait_for(lambda: _same(fake, connector), 10, "the state after the relist")
    assert connector.expired == 2  # one 410 per watch
    applied = nodes.applied + pods.applied
    expected = _changes(fake, "d")
    wait_for(lambda: _same(fake, connector), 10, "changes after the relist")
    assert nodes.applied + pods.applied - applied == expected
    assert nodes.stale == pods.stale == 0
