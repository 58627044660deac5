"""Helpers for the autoscaler's end-to-end cloud tests (AWS on moto, GCP on the fake GCE
server): a cluster of real servers with a fast autoscaler, its activity log, and stand-in
agents that register and heart-beat one node per bought instance, as the agent on it would.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Cluster, ServerProcess, wait_for


def start_cluster(root: Path, monkeypatch: pytest.MonkeyPatch,
                  launcher: list[str] | None = None, **env: str) -> Cluster:
    """Three servers under ``root`` whose autoscaler ticks every 0.3 s and reconciles every
    second, with ``env`` set too (and started by ``launcher`` when given); started once a
    leader is elected and every server has announced its address, all killed otherwise."""
    monkeypatch.setenv("FEDERATION_AUTOSCALER_INTERVAL", "0.3")
    monkeypatch.setenv("FEDERATION_AUTOSCALER_RECONCILE", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cluster = Cluster(root, launcher=launcher).start()
    try:
        leader = cluster.wait_leader()
        # A launched machine is given the servers that announced themselves: wait for all
        # three, or a launch right after start hands out two.
        wait_for(lambda: all(s["http"] for s in leader.status()["servers"]), 30,
                 "every server's announcement")
    except BaseException:
        cluster.kill_all()
        raise
    return cluster


def put_pool(server: ServerProcess, spec: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{server.url}/v1/pools/{spec['name']}", json=spec, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def submit_wide_job(server: ServerProcess, provider: str) -> None:
    """Submit batch job ``wide``: two tasks of 6 cores and 4 GiB each, on ``provider``'s
    nodes only (so no local node can take them: they wait for the autoscaler to buy some)."""
    job = {"id": "wide", "type": "batch", "groups": [{
        "name": "w", "count": 2, "resources": {"cpu": 6000, "memory": 4096},
        "constraints": [{"attribute": "provider", "operator": "=", "value": provider}],
        "task": {"driver": "exec", "command": ["true"]}}]}
    response = httpx.post(f"{server.url}/v1/jobs", json=job, timeout=10)
    assert response.status_code == 201, response.text


def activities(server: ServerProcess) -> list[dict[str, Any]]:
    return server.get("/v1/autoscaler/activities").json()


def launches(server: ServerProcess) -> list[dict[str, Any]]:
    return [a for a in activities(server) if a["kind"] == "launch"]


def terminated(server: ServerProcess) -> list[dict[str, Any]]:
    return [a for a in activities(server) if a["kind"] == "terminate" and a["status"] == "done"]


def ticks(server: ServerProcess) -> int:
    """Autoscaler passes ``server`` has run as leader (its metric)."""
    found = _TICKS.search(server.get("/metrics").text)
    return int(float(found.group(1))) if found else 0


_TICKS = re.compile(r"^federation_autoscaler_ticks_total (\S+)$", re.M)


def stays(server: ServerProcess, predicate: Any, passes: int = 2, timeout: float = 60) -> None:
    """``predicate`` holds while the leader ``server`` runs ``passes`` more autoscaler
    passes: nothing more happens, whatever the machine's speed (a fixed sleep may end before
    the autoscaler even looked)."""
    until = ticks(server) + passes
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while ticks(server) < until:
        assert predicate()
        assert time.monotonic() < deadline, f"the autoscaler ran fewer than {passes} passes"
        done.wait(0.2)
    assert predicate()


@dataclass(frozen=True)
class Identity:
    """What the agent on an instance reports about it when it registers its node."""

    name: str
    instance_id: str
    zone: str
    instance_type: str


class Agents:
    """Registers one node per instance and heart-beats them, as agents on them would.

    ``identify`` reads an instance as the cloud's API describes it (its shape differs from
    one cloud to the next) into the identity its agent would report.
    """

    def __init__(self, urls: list[str], provider: str, region: str,
                 identify: Callable[[Any], Identity]) -> None:
        self.urls = urls
        self.provider = provider
        self.region = region
        self.identify = identify
        self.nodes: dict[str, tuple[str, str]] = {}  # instance id -> (node id, token)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def join(self, instance: Any, pool: str, cpu_milli: int = 2000,
             memory_mib: int = 8192) -> None:
        who = self.identify(instance)
        body = {"name": who.name, "pool": pool, "provider": self.provider,
                "region": self.region, "zone": who.zone, "instance_type": who.instance_type,
                "instance_id": who.instance_id,
                "capacity": {"cpu_milli": cpu_milli, "memory_mib": memory_mib}}
        for url in self.urls:
            try:
                response = httpx.post(url + "/v1/nodes", json=body, timeout=5)
            except httpx.HTTPError:
                continue
            if response.status_code == 201:
                data = response.json()
                self.nodes[who.instance_id] = (data["id"], data["token"])
                return
        raise AssertionError(f"no server registered {who.name}")

    def start(self) -> Agents:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(0.4):
            for node_id, token in list(self.nodes.values()):
                for url in self.urls:
                    try:
                        httpx.post(f"{url}/v1/nodes/{node_id}/heartbeat", timeout=2,
                                   headers={"X-Node-Token": token})
                        break
                    except httpx.HTTPError:
                        continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
