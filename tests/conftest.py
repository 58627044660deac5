"""Fixtures shared by the whole suite."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DockerEngine, EngineUnavailable, start_engine
from tests.harness import Cluster

# Agents run as root run their tasks as `nobody` by default. Most tests run tasks with the
# test's own interpreter and files under its private temporary directory, which `nobody`
# cannot reach: they keep tasks as the test's user. Tests of the task identity itself
# (tests/integration/test_credentials.py) start agents without this variable.
os.environ.setdefault("FEDERATION_TASK_USER", getpass.getuser())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three real servers on loopback, with an elected leader; all stopped afterwards."""
    c = Cluster(tmp_path / "cluster").start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.kill_all()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd (own socket and data root) with the offline test image
    ``DockerEngine.image``; skipped, naming the reason, only when dockerd cannot start."""
    try:
        engine = start_engine()
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine for this test: {exc}")
    try:
        yield engine
    finally:
        engine.stop()
