"""Failover and catch-up of a 3-server cluster on this machine.

For each of --kills rounds: SIGKILL the leader while a writer keeps trying to submit jobs to
the survivors, and measure the time from the kill to the first acknowledged write. Then, with
--backlog jobs written while it was down, restart the killed server and measure how long it
takes to hold the leader's state index (from process start, and from its API answering).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, median, percentile  # noqa: E402


def spec(job_id: str) -> dict:
    return {"id": job_id, "type": "service", "groups": [{
        "name": "g", "resources": {"cpu": 10, "memory": 10}, "task": {"command": ["true"]}}]}


def first_ack_after(urls: list[str], started: float, tag: str, limit: float = 10.0) -> float:
    http = httpx.Client(timeout=0.5)
    i = 0
    try:
        while time.monotonic() - started < limit:
            url = urls[i % len(urls)]
            i += 1
            try:
                r = http.post(url + "/v1/jobs", json=spec(f"{tag}-{i}"),
                              headers={"Idempotency-Key": f"{tag}-{i}"})
                if r.status_code == 201:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    finally:
        http.close()
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--snapshot-entries", type=int, default=None,
                        help="the servers' --raft-snapshot-entries")
    args = parser.parse_args()
    extra = ["--log-level", "warning"]
    if args.snapshot_entries is not None:
        extra += ["--raft-snapshot-entries", str(args.snapshot_entries)]
    c = cluster(extra).start()
    failovers, catchup_total, catchup_api = [], [], []
    try:
        for round_ in range(args.kills):
            leader = c.wait_leader(30)
            survivors = [s for s in c.servers if s is not leader]
            time.sleep(0.5)
            killed_at = time.monotonic()
            leader.kill()
            failovers.append(first_ack_after([s.url for s in survivors], killed_at,
                                             f"r{round_}"))
            new_leader = c.wait_leader(30)
            with httpx.Client(timeout=5) as http:
                for i in range(args.backlog):
                    http.post(new_leader.url + "/v1/jobs", json=spec(f"b{round_}-{i}"))
            target = new_leader.status()["index"]
            started = time.monotonic()
            leader.start()
            api_at = None
            while time.monotonic() - started < 30:
                try:
                    index = leader.status()["index"]
                    api_at = api_at or time.monotonic()
                    if index >= target:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
            done = time.monotonic()
            catchup_total.append(done - started)
            catchup_api.append(done - (api_at or done))
            print(f"round {round_ + 1}: failover {failovers[-1]*1000:.0f} ms, catch-up "
                  f"{catchup_total[-1]:.2f} s from start ({catchup_api[-1]:.2f} s after its "
                  "API answered)", flush=True)
    finally:
        c.kill_all()
    print(f"machine: {machine()}")
    print(f"failover over {len(failovers)} leader kills, kill -> first acknowledged write: "
          f"p50 {percentile(failovers, 50)*1000:.0f} ms, p99 {percentile(failovers, 99)*1000:.0f} "
          f"ms, max {max(failovers)*1000:.0f} ms")
    print(f"catch-up of a restarted server ({args.backlog} writes behind): median "
          f"{median(catchup_total):.2f} s from process start, {median(catchup_api):.2f} s "
          "after its API answered")


if __name__ == "__main__":
    main()
