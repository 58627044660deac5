"""Shared helpers of the benchmarks: the machine, medians, and a 3-server cluster."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import Cluster, stop_all  # noqa: E402


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def cluster(extra_args: list[str] | None = None, size: int = 3) -> Cluster:
    root = Path(tempfile.mkdtemp(prefix="federation-bench-"))
    c = Cluster(root, size=size)
    for server in c.servers:
        server.extra_args = list(extra_args or [])
    return c


@contextlib.contextmanager
def sampled(pids: list[int], out_dir: str | None) -> Iterator[None]:
    """While the block runs, sample what holds each process's GIL with py-spy (collapsed stacks in
    ``out_dir/PID.txt``); does nothing when ``out_dir`` is not given."""
    if not out_dir:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    samplers = [subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--gil",
         "--nonblocking",
         "--output", f"{out_dir}/{pid}.txt"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for pid in pids]
    try:
        yield
    finally:
        stop_all(samplers, signal.SIGINT, 30)  # py-spy writes its file on SIGINT

