"""CPU and memory of idle servers: a 3-server cluster with nothing to do, for --seconds."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cluster, machine  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    c = cluster(["--log-level", "warning"]).start()
    try:
        leader = c.wait_leader()
        time.sleep(3)
        before = {s.id: cpu_seconds(s.proc.pid) for s in c.servers}
        time.sleep(args.seconds)
        print(f"machine: {machine()}")
        print(f"idle servers over {args.seconds:g}s:")
        for s in c.servers:
            used = cpu_seconds(s.proc.pid) - before[s.id]
            role = "leader  " if s is leader else "follower"
            print(f"  {s.id} {role} {100 * used / args.seconds:5.2f}% of a core, "
                  f"{rss_mib(s.proc.pid):6.1f} MiB resident")
    finally:
        c.kill_all()


if __name__ == "__main__":
    main()
