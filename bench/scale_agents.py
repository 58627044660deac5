"""Many nodes on three servers: simulated agents speaking the real agent protocol.

Three real `federation server` processes; load-generator processes each run many simulated
agents on one asyncio loop (aiohttp). Each agent does what `federation agent` does over HTTP:
register, heart-beat every TTL/3 (moving to the next server when one fails, and trying a
beat no server took again within a second), follow its work
list with a blocking query (``?index=&wait=30``), and report ``running`` for each allocation
it is given. The run has four phases:

1. steady: every node heart-beating for ``--steady`` seconds: heartbeat latency, nodes
   falsely marked down, the leader's CPU, Raft commits/s (with nothing but liveness going on,
   every commit is liveness's);
2. batch: ``--jobs`` batch jobs of ``--instances`` instances in all are submitted: the time
   until every instance is reported running by its agent, and the latency of every API call
   made meanwhile (agents' calls and a prober's reads);
3. failover: the leader is killed: nodes marked down by the new leader, and the longest gap
   between two acknowledged heartbeats of any node across the failover;
4. the figures, printed.

``--baseline-src DIR`` runs the servers from another source tree (e.g. ``git archive`` of the
commit before heartbeats left the Raft log) for a before/after comparison on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import cluster, machine, percentile, sampled  # noqa: E402

WATCH_WAIT = 30.0


# -- the simulated agents (in worker processes) ---------------------------------------------
class Sim:
    def __init__(self, urls: list[str], ttl: float, stop: Any, capacity: dict[str, int]):
        self.urls, self.ttl, self.stop, self.capacity = urls, ttl, stop, capacity
        self.told = ttl  # the longest TTL the servers told any agent
        self.beats: list[tuple[float, float, str]] = []  # (time, latency, node id)
        self.calls: list[tuple[float, float, str]] = []  # (time, latency, kind) non-blocking
        self.errors: dict[str, int] = {}
        self.running: set[str] = set()
        # Failed heartbeat attempts: (time, node id, server index, what) - why a gap was.
        self.beat_failures: list[tuple[float, str, int, str]] = []

    def _error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def call(self, session: Any, home: list[int], method: str, path: str,
                   kind: str | None, node_id: str = "", rounds: int = 3,
                   **kwargs: Any) -> tuple[int, Any, Any]:
        """One call, moving to the next server on a connection failure or a 5xx, at most
        ``rounds`` times round the servers."""
        import aiohttp

        for _ in range(rounds * len(self.urls)):
            server = home[0] % len(self.urls)
            url = self.urls[server]
            started = time.time()
            try:
                async with session.request(method, url + path, **kwargs) as response:
                    body = await response.read()
                    status = response.status
                    headers = response.headers.copy()  # case-insensitive
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._error(f"{kind or 'watch'}:connect:{type(exc).__name__}")
                if kind == "heartbeat":
                    self.beat_failures.append((started, node_id, server,
                                               f"{type(exc).__name__} after "
                                               f"{time.time() - started:.1f}s"))
                home[0] += 1
                await asyncio.sleep(0.05)
                continue
            if kind is not None:
                self.calls.append((started, time.time() - started, kind))
            if status >= 500:
                self._error(f"{kind or 'watch'}:{status}")
                if kind == "heartbeat":
                    self.beat_failures.append((started, node_id, server, f"HTTP {status}"))
                home[0] += 1
                await asyncio.sleep(0.05)
                continue
            return status, json.loads(body) if body else None, headers
        return 0, None, {}

    async def agent(self, session: Any, name: str, home: int, ready: Any) -> None:
        where = [home]
        status, reg, _ = await self.call(session, where, "POST", "/v1/nodes", "register", json={
            "name": name, "pool": "sim", "capacity": self.capacity})
        if status != 201:
            self._error("register:failed")
            ready()
            return
        node_id, token = reg["id"], reg["token"]
        headers = {"X-Node-Token": token}
        ready()
        await asyncio.gather(self.heartbeats(session, where, node_id, headers),
                             self.watch(session, where, node_id, headers))

    async def heartbeats(self, session: Any, where: list[int], node_id: str,
                         headers: dict[str, str]) -> None:
        interval = self.ttl / 3  # until the servers tell another TTL, as the agent does
        retry = min(1.0, interval / 3)
        await asyncio.sleep(random.uniform(0, interval))
        while not self.stop.is_set():
            started = time.time()
            status, reply, _ = await self.call(session, where, "POST",
                                               f"/v1/nodes/{node_id}/heartbeat", "heartbeat",
                                               node_id, rounds=1, json={}, headers=headers)
            if status == 200:
                told = float((reply or {}).get("heartbeat_ttl") or self.ttl)
                self.told = max(self.told, told)
                interval = told / 3
                self.beats.append((started, time.time() - started, node_id))
                await asyncio.sleep(max(0.0, interval - (time.time() - started)))
            else:
                # As the agent does: a beat no server took (each tried once) is tried again
                # soon rather than an interval later.
                self._error(f"heartbeat:{status}")
                await asyncio.sleep(random.uniform(retry / 2, retry))

    async def watch(self, session: Any, where: list[int], node_id: str,
                    headers: dict[str, str]) -> None:
        index = 0
        reported: set[str] = set()
        while not self.stop.is_set():
            params = {"index": str(index), "wait": str(WATCH_WAIT)} if index else {}
            status, allocs, answer = await self.call(
                session, where, "GET", f"/v1/nodes/{node_id}/allocations", None,
                params=params, headers=headers)
            if status != 200:
                await asyncio.sleep(1.0)
                continue
            index = int(answer.get("X-Federation-Index", index) or 0)
            updates = [{"id": a["id"], "client_status": "running", "started_at": time.time()}
                       for a in allocs if a["desired_status"] == "run"
                       and a["client_status"] == "pending" and a["id"] not in reported]
            for i in range(0, len(updates), 500):
                chunk = updates[i:i + 500]
                status, _, _ = await self.call(
                    session, where, "POST", f"/v1/nodes/{node_id}/allocations", "report",
                    json={"updates": chunk}, headers=headers)
                if status == 200:
                    reported.update(u["id"] for u in chunk)
                    self.running.update(u["id"] for u in chunk)
                else:
                    self._error(f"report:{status}")


def worker(urls: list[str], ttl: float, names: list[str], capacity: dict[str, int],
           stop: Any, ready_queue: Any, out_path: str) -> None:
    import aiohttp

    async def main() -> None:
        sim = Sim(urls, ttl, stop, capacity)
        # Idle connections kept as long as the servers keep them (75 s): a beat every 20 s
        # or more reuses its connection.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False,
                                         keepalive_timeout=70)
        timeout = aiohttp.ClientTimeout(total=WATCH_WAIT + 15, sock_connect=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            registered = 0

            def ready() -> None:
                nonlocal registered
                registered += 1
                if registered == len(names):
                    ready_queue.put(len(names))

            tasks = [asyncio.create_task(sim.agent(session, name, i % len(urls), ready))
                     for i, name in enumerate(names)]
            while not stop.is_set():
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        Path(out_path).write_text(json.dumps({
            "beats": sim.beats, "calls": sim.calls, "errors": sim.errors,
            "running": len(sim.running), "beat_failures": sim.beat_failures,
            "told": sim.told}))

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


# -- the conductor ---------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def leader_of(c: Any) -> Any:
    return c.wait_leader(60)


def commit_index(server: Any) -> int:
    return int(server.status()["commit_index"])


def commands(server: Any, kind: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("federation_commands_total{") and f'type="{kind}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def marked_down(c: Any, since: float = 0.0) -> int:
    """Nodes marked down by any leader (after ``since``), from the servers' logs."""
    import datetime

    count = 0
    for server in c.servers:
        for line in server.log().splitlines():
            if "marked down" in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                if stamp.timestamp() >= since:
                    count += 1
    return count


def leader_changes(c: Any, since: float = 0.0) -> int:
    import datetime

    count = 0
    for server in c.servers:
        for line in server.log().splitlines():
            if "gained leadership" in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                if stamp.timestamp() >= since:
                    count += 1
    return count


def told_ttl(server: Any, default: float) -> float:
    """The TTL the servers tell agents now (longer than --ttl in a large cluster)."""
    try:
        return float(httpx.get(server.url + "/v1/agent/settings", timeout=60)
                     .json()["heartbeat_ttl"])
    except (httpx.HTTPError, KeyError, ValueError, TypeError):
        return default


def down_nodes(server: Any) -> int:
    nodes = httpx.get(server.url + "/v1/nodes", timeout=60).json()
    return sum(1 for n in nodes if n["status"] == "down")


def batch_spec(job_id: str, count: int) -> dict[str, Any]:
    return {"id": job_id, "type": "batch", "groups": [{
        "name": "g", "count": count, "resources": {"cpu": 10, "memory": 8},
        "task": {"command": ["sleep", "3600"]}}]}


def running_total(server: Any, job_ids: list[str],
                  timed: list[tuple[float, float]] | None = None) -> int:
    """Instances reported running, one GET per job; each call's (start, seconds) goes to
    ``timed``: one API call is one latency, not the sum of ten."""
    total = 0
    for job_id in job_ids:
        started = time.time()
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=30).json()
        if timed is not None:
            timed.append((started, time.time() - started))
        total += job["allocations"]["running"]
    return total


def placement_audit(server: Any, job_ids: list[str],
                    detail: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """What the jobs' "running" counts are made of. ``running`` counts every allocation whose
    agent last reported it running, including copies the servers told to stop (a simulated
    agent never stops anything); ``live_duplicates`` are instances (job, group, index) with
    more than one allocation meant to run, pending or running: a real double placement."""
    out = {"running": 0, "running_told_to_stop": 0, "live_duplicates": 0, "lost": 0,
           "instances_live": 0}
    for job_id in job_ids:
        allocs = httpx.get(f"{server.url}/v1/allocations", params={"job": job_id},
                           timeout=60).json()
        live: dict[tuple[str, int], int] = {}
        for a in allocs:
            out["running"] += a["client_status"] == "running"
            out["lost"] += a["client_status"] == "lost"
            if a["desired_status"] != "run":
                out["running_told_to_stop"] += a["client_status"] == "running"
            elif a["client_status"] in ("pending", "running"):
                key = (a["group"], a.get("index", 0))
                live[key] = live.get(key, 0) + 1
        out["instances_live"] += len(live)
        out["live_duplicates"] += sum(1 for n in live.values() if n > 1)
        if detail is not None:
            twice = {k for k, n in live.items() if n > 1}
            detail.extend({k: a.get(k) for k in ("job_id", "group", "index", "id", "node_id",
                                                  "create_index", "client_status")}
                          for a in allocs if (a["group"], a.get("index", 0)) in twice)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--max-heartbeats-per-second", type=float, default=None,
                        help="passed to the servers (default: theirs; 0: the TTL never "
                             "scales with the number of nodes)")
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--batch-timeout", type=float, default=600.0)
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument("--baseline-src", default=None,
                        help="run the servers from this source tree instead")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=None, help="write the figures here too")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="sample the servers with py-spy (--gil) during the batch")
    args = parser.parse_args()
    if args.baseline_src:
        # `python -m` puts the working directory first on the path: run from the tree.
        os.environ["PYTHONPATH"] = os.path.abspath(args.baseline_src)
        os.chdir(args.baseline_src)
    server_args = ["--log-level", "info", "--heartbeat-ttl", str(args.ttl)]
    if args.max_heartbeats_per_second is not None:
        server_args += ["--max-heartbeats-per-second", str(args.max_heartbeats_per_second)]
    c = cluster(server_args)
    c.start()
    out: dict[str, Any] = {"label": args.label or ("baseline" if args.baseline_src else "this"),
                           "nodes": args.nodes, "ttl": args.ttl, "machine": machine()}
    procs: list[Any] = []
    ttl = args.ttl
    stop = mp.Event()
    try:
        leader = leader_of(c)
        urls = c.urls
        per = -(-args.nodes // args.workers)
        ctx = mp.get_context("fork")
        ready_queue = ctx.Queue()
        capacity = {"cpu_milli": 64000, "memory_mib": 65536}
        files: list[str] = []
        # The workers' result files go whatever happens to the run.
        atexit.register(lambda: [os.unlink(f) for f in files if os.path.exists(f)])
        for w in range(args.workers):
            names = [f"sim-{w}-{i}" for i in range(per) if w * per + i < args.nodes]
            path = f"/tmp/federation-bench-sim-{os.getpid()}-{w}.json"
            files.append(path)
            proc = ctx.Process(target=worker, args=(urls, args.ttl, names, capacity, stop,
                                                    ready_queue, path), daemon=True)
            proc.start()
            procs.append(proc)
        t_reg = time.time()
        registered = 0
        while registered < args.nodes:
            registered += ready_queue.get(timeout=600)
        out["register_s"] = round(time.time() - t_reg, 1)
        print(f"{args.nodes} nodes registered in {out['register_s']} s", flush=True)
        ttl = told_ttl(leader_of(c), args.ttl)
        out["ttl_told_s"] = ttl
        if ttl != args.ttl:
            print(f"the servers tell the agents a TTL of {ttl:g} s", flush=True)
        # Let every node beat at least once before measuring.
        time.sleep(ttl)
        leader = leader_of(c)
        pid = leader.proc.pid
        t0, cpu0, ci0 = time.time(), cpu_seconds(pid), commit_index(leader)
        others0 = ([cpu_seconds(x.proc.pid) for x in c.servers],
                   [cpu_seconds(p.pid) for p in procs])
        downs0 = marked_down(c)
        time.sleep(args.steady)
        t1, cpu1, ci1 = time.time(), cpu_seconds(pid), commit_index(leader)
        out["steady_s"] = round(t1 - t0, 1)
        out["steady_leader_cpu_pct"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 1)
        out["steady_commits_per_s"] = round((ci1 - ci0) / (t1 - t0), 2)
        # Where the 2 cores went: every server, and the load generators (the simulated
        # agents, which on real hardware would be other machines).
        out["steady_servers_cpu_pct"] = [
            round(100 * (cpu_seconds(x.proc.pid) - before) / (t1 - t0), 1)
            for x, before in zip(c.servers, others0[0], strict=True)]
        out["steady_load_generators_cpu_pct"] = round(100 * sum(
            cpu_seconds(p.pid) - before for p, before in zip(procs, others0[1], strict=True))
            / (t1 - t0), 1)
        out["steady_marked_down"] = marked_down(c) - downs0
        out["steady_down_now"] = down_nodes(leader)
        out["steady_leader_elections"] = leader_changes(c, since=t0)
        out["window_steady"] = (t0, t1)
        print(f"steady: {out['steady_commits_per_s']} commits/s, leader CPU "
              f"{out['steady_leader_cpu_pct']}%, marked down {out['steady_marked_down']}",
              flush=True)

        # -- batch --
        job_ids = [f"batch-{i}" for i in range(args.jobs)]
        counts = [args.instances // args.jobs + (1 if i < args.instances % args.jobs else 0)
                  for i in range(args.jobs)]
        probe_lat: list[tuple[float, float]] = []
        submit_lat: list[tuple[float, float]] = []
        profiling = sampled([s.proc.pid for s in c.servers], args.profile)
        profiling.__enter__()
        tb0 = time.time()
        http = httpx.Client(timeout=60)
        submit_retries = 0
        for job_id, count in zip(job_ids, counts, strict=True) if args.jobs else ():
            # As the SDK does: the same Idempotency-Key across retries of a 503 (a leader
            # change while the command was in flight), to any server.
            for attempt in range(20):
                server = c.servers[(attempt + c.servers.index(leader)) % len(c.servers)]
                started = time.time()
                try:
                    r = http.post(server.url + "/v1/jobs", json=batch_spec(job_id, count),
                                  headers={"Idempotency-Key": f"submit-{job_id}"})
                except httpx.HTTPError:
                    continue
                finally:
                    submit_lat.append((started, time.time() - started))
                if r.status_code == 201:
                    break
                if r.status_code != 503:
                    raise SystemExit(f"submit failed: {r.status_code} {r.text[:300]}")
                submit_retries += 1
                time.sleep(0.2)
            else:
                raise SystemExit(f"submit of {job_id} failed 20 times")
        out["batch_submit_retries"] = submit_retries
        out["batch_submitted_s"] = round(time.time() - tb0, 1)
        done_at = None
        last = -1
        while time.time() - tb0 < args.batch_timeout:
            try:
                leader = leader_of(c)
                total = running_total(leader, job_ids, probe_lat)
            except (httpx.HTTPError, AssertionError, KeyError, ValueError):
                total = last
            for path in ("/v1/nodes?limit=100", "/v1/status"):
                started = time.time()
                try:
                    http.get(leader.url + path)
                except httpx.HTTPError:
                    pass
                probe_lat.append((started, time.time() - started))
            if total != last:
                print(f"  running {total}/{args.instances} at {time.time() - tb0:.1f} s",
                      flush=True)
                last = total
            if total >= args.instances or not args.jobs:
                done_at = time.time()
                break
            time.sleep(1.0)
        http.close()
        tb1 = time.time()
        profiling.__exit__(None, None, None)
        out["batch_instances"] = args.instances
        out["batch_all_running_s"] = round(done_at - tb0, 1) if done_at else None
        out["batch_running_at_end"] = last
        out["window_batch"] = (tb0, tb1)
        out["batch_leader_elections"] = leader_changes(c, since=tb0)
        out["batch_marked_down"] = marked_down(c, since=tb0)
        if args.jobs:
            twice: list[dict[str, Any]] = []
            out["batch_audit"] = placement_audit(leader_of(c), job_ids, twice)
            if twice and args.json:
                Path(args.json + ".duplicates.json").write_text(json.dumps(twice))
            print(f"  audit: {out['batch_audit']}", flush=True)
        out["probe_latencies"] = probe_lat
        out["submit_latencies"] = submit_lat

        # -- failover --
        if not args.no_kill:
            leader = leader_of(c)
            out["killed_server"] = c.servers.index(leader)
            tk = time.time()
            leader.kill()
            deadline = time.time() + 60
            new = None
            while time.time() < deadline:
                try:
                    cand = c.wait_leader(2)
                    if cand is not leader:
                        new = cand
                        break
                except AssertionError:
                    pass
            out["failover_new_leader_s"] = round(time.time() - tk, 2) if new else None
            time.sleep(2 * ttl + 2)
            if new is not None:
                out["failover_marked_down_by_new_leader"] = marked_down(c, since=tk)
                out["failover_down_now"] = down_nodes(new)
                if args.jobs:
                    out["failover_audit"] = placement_audit(new, job_ids)
            out["window_kill"] = (tk, time.time())
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
        c.kill_all()

    beats, calls, errors, running, failures = [], [], {}, 0, []
    for path in files:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        os.unlink(path)
        beats += data["beats"]
        calls += data["calls"]
        running += data["running"]
        failures += data["beat_failures"]
        for k, v in data["errors"].items():
            errors[k] = errors.get(k, 0) + v
    out["errors"] = errors
    out["sim_allocations_reported_running"] = running

    def lat(window: tuple[float, float], kinds: set[str] | None) -> list[float]:
        return [d for t, d, k in calls if window[0] <= t <= window[1]
                and (kinds is None or k in kinds)]

    s = out["window_steady"]
    hb = lat(s, {"heartbeat"})
    out["steady_heartbeats_per_s"] = round(len(hb) / (s[1] - s[0]), 1)
    out["steady_heartbeat_p50_ms"] = round(1000 * percentile(hb, 50), 1)
    out["steady_heartbeat_p99_ms"] = round(1000 * percentile(hb, 99), 1)
    b = out["window_batch"]
    probes = [d for t, d in out.pop("probe_latencies")]
    submits = [d for t, d in out.pop("submit_latencies")]
    api = lat(b, None) + probes + submits
    kinds = {k for t, d, k in calls if b[0] <= t <= b[1]}
    by_kind = {kind: lat(b, {kind}) for kind in sorted(kinds)}
    by_kind["prober reads"] = probes
    by_kind["job submissions"] = submits
    out["batch_api_by_kind"] = {
        kind: {"calls": len(v), "p50_ms": round(1000 * percentile(v, 50), 1),
               "p99_ms": round(1000 * percentile(v, 99), 1)}
        for kind, v in by_kind.items() if v}
    out["batch_api_calls"] = len(api)
    out["batch_api_p50_ms"] = round(1000 * percentile(api, 50), 1)
    out["batch_api_p99_ms"] = round(1000 * percentile(api, 99), 1)
    out["batch_heartbeat_p99_ms"] = round(1000 * percentile(lat(b, {"heartbeat"}), 99), 1)
    if "window_kill" in out:
        k = out["window_kill"]
        by_node: dict[str, list[float]] = {}
        for t, d, node_id in beats:
            if k[0] - 2 * ttl <= t <= k[1]:
                by_node.setdefault(node_id, []).append(t + d)
        gaps = []
        long_gaps: list[tuple[str, float, float]] = []  # node, gap start, gap end
        for node_id, ts in ((n, sorted(v)) for n, v in by_node.items()):
            if len(ts) < 2:
                gaps.append(float("inf"))
                continue
            gap, start = max((b2 - b1, b1) for b1, b2 in zip(ts, ts[1:], strict=False))
            gaps.append(gap)
            if gap > ttl / 2:
                long_gaps.append((node_id, start, start + gap))
        # Why the long gaps were: the failed attempts inside each, by kind.
        reasons: dict[str, int] = {}
        inside = {n: (a, b) for n, a, b in long_gaps}
        for t, node_id, server, what in failures:
            span = inside.get(node_id)
            if span and span[0] <= t <= span[1]:
                key = f"{what.split(' after ')[0]} from server {server}"
                reasons[key] = reasons.get(key, 0) + 1
        out["failover_long_gap_failures"] = dict(sorted(reasons.items()))
        starts = sorted(a - k[0] for _, a, _ in long_gaps)
        if starts:
            out["failover_long_gaps_start_after_kill_s"] = [
                round(percentile(starts, p), 1) for p in (0, 50, 100)]
        # Gaps that end after the kill: the silences the failover itself caused or prolonged
        # (the window above also holds the tail of the batch, when busy servers answer late).
        across = [max((b2 - b1 for b1, b2 in zip(ts, ts[1:], strict=False) if b2 >= k[0]),
                      default=float("inf")) for ts in (sorted(v) for v in by_node.values())]
        out["failover_max_gap_across_kill_s"] = round(max(across), 2) if across else None
        out["failover_nodes_gap_across_kill_over_ttl"] = sum(1 for g in across if g > ttl)
        out["failover_nodes_beating"] = len(by_node)
        out["failover_max_gap_s"] = round(max(gaps), 2) if gaps else None
        out["failover_nodes_gap_over_ttl"] = sum(1 for g in gaps if g > ttl)
        out["failover_heartbeat_p99_ms"] = round(1000 * percentile(lat(k, {"heartbeat"}), 99), 1)
        out["failover_heartbeat_max_ms"] = round(1000 * max(lat(k, {"heartbeat"}) or [0]), 1)
        out["killed_server"] = out.pop("killed_server", None)
    for key in [k for k in out if k.startswith("window_")]:
        out.pop(key)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
