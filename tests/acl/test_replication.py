"""ACL tokens and policies travel through Raft: a token made on the leader works on every
follower within 2 s, a deleted one fails everywhere, and both survive a restart of every
server and a snapshot restore."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import Cluster, wait_for

BOOT = "replication-bootstrap-token-0123"


def works(server, secret: str) -> bool:
    answer = httpx.get(server.url + "/v1/jobs", timeout=5,
                       headers={"Authorization": f"Bearer {secret}"})
    if answer.status_code not in (200, 403):
        raise AssertionError(answer.text)
    return answer.status_code == 200


def test_tokens_replicate_are_revoked_everywhere_and_survive_restart_and_restore(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "c", size=3, token=BOOT).start()
    admin = {"Authorization": f"Bearer {BOOT}"}
    try:
        leader = wait_for(lambda: _leader(cluster), 30, "a leader")
        assert httpx.put(leader.url + "/v1/acl/policy/reader", headers=admin, timeout=10,
                         content='namespace "*" { policy = "read" }').status_code == 200
        made = httpx.post(leader.url + "/v1/acl/tokens", headers=admin, timeout=10,
                          json={"name": "reader", "policies": ["reader"]}).json()
        secret = made["secret_id"]
        for follower in cluster.followers(leader):
            wait_for(lambda f=follower: works(f, secret), 2, f"the token on {follower.id}")

        backup = httpx.get(leader.url + "/v1/snapshot", headers=admin, timeout=10).json()
        assert secret not in str(backup)  # the snapshot holds hashes only
        assert httpx.delete(leader.url + f"/v1/acl/token/{made['accessor_id']}",
                            headers=admin, timeout=10).status_code == 200
        for server in cluster.servers:
            wait_for(lambda s=server: not works(s, secret), 2, f"revocation on {server.id}")

        restored = httpx.post(leader.url + "/v1/snapshot", headers=admin, timeout=30,
                              json=backup)
        assert restored.status_code == 200, restored.text
        for server in cluster.servers:
            wait_for(lambda s=server: works(s, secret), 2, f"the restored token on {server.id}")

        cluster.stop()
        for server in cluster.servers:
            server.start()
        wait_for(lambda: _leader(cluster), 30, "a leader after the restart")
        for server in cluster.servers:
            wait_for(lambda s=server: works(s, secret), 15, f"the token after restart on "
                     f"{server.id}")
        policies = httpx.get(cluster.servers[0].url + "/v1/acl/policies", headers=admin,
                             timeout=10).json()
        assert [p["name"] for p in policies] == ["reader"]
    finally:
        cluster.kill_all()


def _leader(cluster: Cluster):
    admin = {"Authorization": f"Bearer {BOOT}"}
    leaders = set()
    for server in cluster.alive():
        status = httpx.get(server.url + "/v1/status", headers=admin, timeout=5).json()
        leaders.add(status["leader"])
    if len(leaders) != 1 or None in leaders:
        return None
    (leader_id,) = leaders
    return next(s for s in cluster.servers if s.id == leader_id)
