"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DockerEngine, EngineUnavailable, start_engine
from tests.harness import Cluster


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
