"""Commands/s through the replicated layer: group commit against one entry per command, with
the journal fsynced (the servers' default) and without.

Three Raft nodes in three processes on this machine; the load generator lives in the leader's
process and submits commands from 4 threads as fast as it can, then waits for every result.
Journals live under --data-dir (default: the system temp dir; put it on the disk you mean to
measure). Prints the median of --runs runs for each mode and the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median  # noqa: E402
from federation.raft.node import RaftConfig, RaftNode, RaftSettings  # noqa: E402
from tests.harness import SECRET, free_ports, wait_for  # noqa: E402

SLOW_ELECTION = RaftSettings(election_timeout_min=1.5, election_timeout_max=2.0,
                             connection_timeout=2.5)


def follower(addr: str, peers: list[str], data_dir: str, settings: RaftSettings,
             stop: mp.Event) -> None:
    node = RaftNode(RaftConfig(addr, peers, data_dir, SECRET, settings))
    stop.wait(600)
    node.stop()


def one_run(commands: int, settings: RaftSettings, data_dir: str | None = None) -> float:
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    root = tempfile.mkdtemp(prefix="raft-bench-", dir=data_dir)
    stop = mp.Event()
    follower_settings = RaftSettings(
        election_timeout_min=SLOW_ELECTION.election_timeout_min,
        election_timeout_max=SLOW_ELECTION.election_timeout_max,
        connection_timeout=SLOW_ELECTION.connection_timeout,
        max_batch=settings.max_batch, max_inflight_batches=settings.max_inflight_batches,
        fsync=settings.fsync)
    procs = [mp.Process(target=follower, args=(a, [b for b in addrs if b != a],
                                                f"{root}/{i}", follower_settings, stop))
             for i, a in enumerate(addrs[1:], start=1)]
    for p in procs:
        p.start()
    leader_settings = RaftSettings(
        election_timeout_min=0.3, election_timeout_max=0.4,
        max_batch=settings.max_batch, max_inflight_batches=settings.max_inflight_batches,
        fsync=settings.fsync)
    node = RaftNode(RaftConfig(addrs[0], addrs[1:], f"{root}/0", SECRET, leader_settings))
    try:
        wait_for(node.is_leader, 20, "the benchmark node to lead")
        node.barrier()
        per_thread = commands // 4
        futures: list = []
        lock = threading.Lock()

        def submit(offset: int) -> None:
            mine = [node.submit({"type": "job.register", "spec": {
                "id": f"j{offset + i}", "groups": [], "depends_on": []}})
                for i in range(per_thread)]
            with lock:
                futures.extend(mine)

        start = time.perf_counter()
        threads = [threading.Thread(target=submit, args=(t * per_thread,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for f in futures:
            f.result(timeout=120)
        elapsed = time.perf_counter() - start
        return len(futures) / elapsed
    finally:
        node.stop()
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--data-dir", default=None, help="where the journals go")
    args = parser.parse_args()
    modes = {
        "group commit, fsync": RaftSettings(),
        "group commit, no fsync": RaftSettings(fsync=False),
        "one entry per command, fsync": RaftSettings(max_batch=1,
                                                     max_inflight_batches=1_000_000),
        "one entry/command, no fsync": RaftSettings(max_batch=1, max_inflight_batches=1_000_000,
                                                    fsync=False),
    }
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.runs):
        for mode, settings in modes.items():
            results[mode].append(one_run(args.commands, settings, args.data_dir))
    print(f"machine: {machine()}")
    print(f"replicated commands/s, 3 nodes, {args.commands} commands, median of {args.runs}:")
    for mode, values in results.items():
        print(f"  {mode:30s} {median(values):9.0f}/s   runs: "
              + ", ".join(f"{v:.0f}" for v in values))
    m = {mode: median(values) for mode, values in results.items()}
    print(f"  fsync cost, group commit: fsync/no fsync = "
          f"{m['group commit, fsync'] / m['group commit, no fsync']:.2f}x")
    print(f"  fsync cost, one entry per command: fsync/no fsync = "
          f"{m['one entry per command, fsync'] / m['one entry/command, no fsync']:.2f}x")
    print(f"  ratio group/un-coalesced (fsync): "
          f"{m['group commit, fsync'] / m['one entry per command, fsync']:.1f}x")


if __name__ == "__main__":
    main()
