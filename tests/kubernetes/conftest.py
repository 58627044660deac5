"""Fixtures for member-cluster tests: a real single-server federation cluster on loopback,
fake member API servers, and `federation` CLI / agent processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster
from tests.kubernetes.fake_apiserver import FakeKubeAPIServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "servers", size=1).start()
    try:
        cluster.wait_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[list[FakeKubeAPIServer]]:
    """Started fake member API servers; a test appends what it starts (stopped at the end)."""
    started: list[FakeKubeAPIServer] = []
    try:
        yield started
    finally:
        for fake in started:
            fake.stop()


def cli(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "federation.cli.main", "--address", address, *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`federation agent` processes a test starts with ``start_agent`` (stopped at the end)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def start_agent(url: str, root: Path, name: str, procs: list, cpu: int = 2000,
                memory: int = 2048) -> subprocess.Popen[bytes]:
    data_dir = root / name
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "agent", "--server", url,
         "--data-dir", str(data_dir), "--name", name, "--cpu", str(cpu),
         "--memory", str(memory), "--stop-tasks-on-exit"],
        stdout=log, stderr=log, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    log.close()
    procs.append(proc)
    return proc


def member(fakes: list[FakeKubeAPIServer], tmp_path: Path, name: str, nodes: int,
           cpu: str = "4", memory: str = "8Gi", **options: object) -> FakeKubeAPIServer:
    """A started fake member cluster of ``nodes`` Ready nodes in two zones."""
    fake = FakeKubeAPIServer(name=name, token=f"{name}-token",
                             tls_dir=str(tmp_path / f"{name}-tls"), **options).start()  # type: ignore[arg-type]
    fakes.append(fake)
    for i in range(nodes):
        fake.add_node(f"{name}-{i + 1}", cpu=cpu, memory=memory, region=name,
                      zone=f"{name}-{'ab'[i % 2]}")
    return fake
