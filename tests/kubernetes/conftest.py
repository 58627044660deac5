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
