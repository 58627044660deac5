"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
