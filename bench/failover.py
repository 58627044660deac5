"""Failover and catch-up of a 3-server cluster on this machine.

For each of --kills rounds: SIGKILL the leader while a writer keeps trying to submit jobs to
the survivors, and measure the time from the kill to the first acknowledged write. Then, with
--backlog jobs written while it was down, restart the killed server and measure how long it
takes to hold the leader's state index (from process start, and from its API answering).

With --catchup-only there are no failovers: --journal jobs are written first (so every server's
journal holds that many writes since its last snapshot), then for each of --rounds rounds a
follower is killed, --backlog jobs are written, and the follower is restarted and timed the same
way. --profile DIR samples the restarted server with py-spy.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, median, percentile  # noqa: E402
from federation.raft.storage import scan_records  # noqa: E402
from tests.harness import Cluster, ServerProcess  # noqa: E402


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


def write_jobs(url: str, tag: str, count: int, writers: int = 1) -> None:
    """``count`` jobs, each acknowledged before the writer's next one (a write refused while
    a leader is elected is sent again, to the same server, with the same idempotency key)."""
    def writer(w: int) -> None:
        with httpx.Client(timeout=10) as http:
            for i in range(w, count, writers):
                deadline = time.monotonic() + 60
                while True:
                    try:
                        r = http.post(url + "/v1/jobs", json=spec(f"{tag}-{i}"),
                                      headers={"Idempotency-Key": f"{tag}-{i}"})
                        if r.status_code < 500 or time.monotonic() > deadline:
                            r.raise_for_status()
                            break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                    time.sleep(0.1)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def journal_entries(server: ServerProcess) -> int:
    path = server.data_dir / "raft.journal"
    return len(scan_records(path.read_bytes(), str(path)).entries)


def time_catchup(server: ServerProcess, target: int, limit: float = 60.0) -> tuple[float, float]:
    """Start ``server``; seconds until its state index reaches ``target``: from the process
    start, and from its API first answering."""
    started = time.monotonic()
    server.start()
    api_at = None
    while time.monotonic() - started < limit:
        try:
            index = server.status()["index"]
            api_at = api_at or time.monotonic()
            if index >= target:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    done = time.monotonic()
    return done - started, done - (api_at or done)


def catchup_only(c: Cluster, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    leader = c.wait_leader(30)
    started = time.monotonic()
    write_jobs(leader.url, "journal", args.journal, args.writers)
    print(f"wrote {args.journal} jobs in {time.monotonic() - started:.1f} s", flush=True)
    totals, apis = [], []
    for round_ in range(args.rounds):
        leader = c.wait_leader(30)
        follower = next(s for s in c.servers if s is not leader)
        follower.kill()
        write_jobs(leader.url, f"b{round_}", args.backlog)
        target = leader.status()["index"]
        entries = journal_entries(follower)
        if args.profile:
            # py-spy samples from the very start of the process.
            spy = str(Path(sys.executable).parent / "py-spy")
            follower.launcher = [spy, "record", "--rate", "200", "--nonblocking",
                                 "--format", "raw", "--output",
                                 f"{args.profile}/round{round_}.txt", "--",
                                 sys.executable, "-m", "federation.cli.main"]
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        total, api = time_catchup(follower, target)
        totals.append(total)
        apis.append(api)
        print(f"round {round_ + 1}: journal {entries} entries, catch-up {total:.2f} s from "
              f"start ({api:.2f} s after its API answered)", flush=True)
        if args.profile:
            # py-spy writes its samples once the server it started has exited.
            assert follower.proc is not None
            children = Path(f"/proc/{follower.proc.pid}/task/{follower.proc.pid}/children")
            for pid in children.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
            follower.proc.wait(60)
            follower.launcher = [sys.executable, "-m", "federation.cli.main"]
            follower.start()
        if args.grow:
            write_jobs(c.wait_leader(30).url, f"g{round_}", args.grow, args.writers)
    return totals, apis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--snapshot-entries", type=int, default=None,
                        help="the servers' --raft-snapshot-entries")
    parser.add_argument("--catchup-only", action="store_true",
                        help="no failovers: time only the catch-up of a restarted follower")
    parser.add_argument("--journal", type=int, default=0,
                        help="--catchup-only: jobs written before the first round")
    parser.add_argument("--grow", type=int, default=0,
                        help="--catchup-only: jobs written after each round")
    parser.add_argument("--writers", type=int, default=8,
                        help="--catchup-only: concurrent writers of --journal and --grow")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", default=None,
                        help="--catchup-only: py-spy samples of each restarted server here")
    args = parser.parse_args()
    extra = ["--log-level", os.environ.get("BENCH_LOG_LEVEL", "warning")]
    if args.snapshot_entries is not None:
        extra += ["--raft-snapshot-entries", str(args.snapshot_entries)]
    c = cluster(extra).start()
    if args.catchup_only:
        try:
            totals, apis = catchup_only(c, args)
        finally:
            c.kill_all()
        print(f"machine: {machine()}")
        print(f"catch-up of a restarted follower ({args.backlog} writes behind, {args.journal} "
              f"written before): median {median(totals):.2f} s from process start (runs "
              f"{', '.join(f'{t:.2f}' for t in totals)}), {median(apis):.2f} s after its API "
              f"answered (runs {', '.join(f'{t:.2f}' for t in apis)})")
        return
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
            total, api = time_catchup(leader, target, 30)
            catchup_total.append(total)
            catchup_api.append(api)
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
