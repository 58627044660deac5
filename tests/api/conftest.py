"""A real single server for the HTTP-edge tests of this folder, shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Cluster


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("api"), size=1).start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.kill_all()


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (VmRSS, in KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
