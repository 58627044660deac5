"""`federation server` and `federation dev`: run masters."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import typer

from federation.api.agent_address import parse_networks
from federation.errors import FederationError, ValidationError
from federation.providers.base import Provider
from federation.raft.node import RaftSettings
from federation.server import collector
from federation.server.config import (
    DEFAULT_MAX_HEARTBEATS_PER_SECOND,
    DEFAULT_REQUESTS_PER_TURN,
    GcSettings,
    ServerConfig,
    read_secret_file,
)
from federation.state.gc import Policy as GcPolicy
from federation.tls import private_dir, write_private

DEV_ADDRESS = "127.0.0.1:4780"
DEV_RAFT = "127.0.0.1:4790"
# What `federation dev` writes in its data dir: --fresh deletes only a dir made of these.
DEV_DATA_ENTRIES = ("raft.secret", "api.token", "server")


def listening(address: str) -> bool:
    """Whether something accepts connections at HOST:PORT (a dev cluster already running)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def wipe_dev_data(data_dir: Path) -> None:
    """Delete a dev cluster's state (jobs, nodes, drains, crons, token), refusing a directory
    that holds anything `federation dev` did not put there."""
    import re
    import shutil

    if not data_dir.exists():
        return
    foreign = [p.name for p in data_dir.iterdir() if p.name not in DEV_DATA_ENTRIES
               and not re.fullmatch(r"agent-\d+(\.log)?", p.name)]
    if foreign:
        raise ValidationError(
            f"{data_dir} holds {', '.join(sorted(foreign)[:3])}, which `federation dev` did "
            "not write: not deleting it; give --data-dir a dev cluster's directory",
            field="--data-dir")
    shutil.rmtree(data_dir)


def _fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: the servers' own calls (heartbeats relayed to the
    # leader several times a second, calls to agents) would drown the server's log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))


def _run(config: ServerConfig, providers: Mapping[str, Provider] | None = None) -> None:
    # Imported here, not at the top: every other command (an agent, a CLI call) starts
    # without the server's web stack and scheduler.
    from federation.server.master import Master
    from federation.tracing import configure_tracing

    try:
        configure_tracing(f"federation-server-{config.id}")
        master = Master(config, providers=providers)
        master.start()
        collector.tune_for_server()
    except (FederationError, ValueError) as exc:
        field = getattr(exc, "field", None)
        _fail(f"{field}: {exc}" if field and not str(exc).startswith(field) else str(exc))
        return
    signal.signal(signal.SIGTERM, lambda *_: master.stop())
    try:
        master.wait()
    except KeyboardInterrupt:
        pass
    finally:
        master.stop()


def register(app: typer.Typer, *, providers: Mapping[str, Provider] | None = None) -> None:
    """Add the server commands to the top-level app. ``providers`` replace the provider
    plugins of those names in the servers these commands run (an embedding program or a
    test wraps a real provider this way)."""

    @app.command()
    def server(
        id: str = typer.Option(..., "--id", help="this server's unique id"),
        data_dir: Path = typer.Option(..., "--data-dir", help="Raft journal and snapshots"),
        http: str = typer.Option("127.0.0.1:4780", "--http", help="API address HOST:PORT"),
        raft: str = typer.Option("127.0.0.1:4790", "--raft", help="Raft address HOST:PORT"),
        peers: str = typer.Option(
            "", "--peers", help="other servers' Raft addresses, comma-separated"),
        secret_file: Path | None = typer.Option(
            None, "--secret-file", help="file holding the Raft secret (or FEDERATION_RAFT_SECRET)"),
        token_file: Path | None = typer.Option(
            None, "--token-file", help="file holding the API token; then every call needs it"),
        join_token_file: Path | None = typer.Option(
            None, "--join-token-file",
            help="file holding the join secret: it may register nodes and nothing else"),
        agent_networks: str = typer.Option(
            "", "--agent-networks",
            help="CIDRs agents may register endpoints in, besides the address they call "
                 "from (comma-separated)"),
        tls_cert: Path | None = typer.Option(None, "--tls-cert", help="serve HTTPS: cert"),
        tls_key: Path | None = typer.Option(None, "--tls-key", help="serve HTTPS: key"),
        tls_ca: Path | None = typer.Option(
            None, "--tls-ca", help="CA that signs agents' and clients' certificates"),
        tls_verify_clients: bool = typer.Option(
            False, "--tls-verify-clients", help="require a client certificate of --tls-ca"),
        insecure: bool = typer.Option(
            False, "--insecure", help="allow a non-loopback API without a token"),
        heartbeat_ttl: float = typer.Option(
            10.0, "--heartbeat-ttl", help="seconds of silence before a node is down"),
        heartbeat_grace: float | None = typer.Option(
            None, "--heartbeat-grace",
            help="seconds a new leader waits before it judges any node (default: one TTL)"),
        max_heartbeats_per_second: float = typer.Option(
            DEFAULT_MAX_HEARTBEATS_PER_SECOND, "--max-heartbeats-per-second",
            help="heartbeats per second the whole cluster may send: a larger cluster is told "
                 "a longer TTL than --heartbeat-ttl (0: never)"),
        log_level: str = typer.Option("info", "--log-level"),
        max_body_bytes: int = typer.Option(
            1 << 20, "--max-body-bytes",
            help="largest API request body accepted (snapshot restore: 32 MiB)"),
        requests_per_turn: int = typer.Option(
            DEFAULT_REQUESTS_PER_TURN, "--requests-per-turn",
            help="API requests started per turn of the server's event loop when it is "
                 "saturated (heartbeats are never held back)"),
        gc_interval: float = typer.Option(
            GcSettings.interval, "--gc-interval",
            help="seconds between garbage collections of finished work (0 disables)"),
        gc_job_age: float = typer.Option(
            GcPolicy.job_age, "--gc-job-age",
            help="seconds a finished job is kept before it is collected"),
        gc_periodic_keep: int = typer.Option(
            GcPolicy.periodic_keep, "--gc-periodic-keep",
            help="finished children kept per periodic job"),
        gc_allocs_per_job: int = typer.Option(
            GcPolicy.allocs_per_job, "--gc-allocs-per-job",
            help="ended, stopped allocations kept per job"),
        raft_max_batch: int = typer.Option(
            RaftSettings.max_batch, "--raft-max-batch", hidden=True,
            help="commands coalesced per Raft entry (1 disables group commit; benchmarks)"),
        raft_fsync: bool = typer.Option(
            RaftSettings.fsync, "--raft-fsync/--no-raft-fsync",
            help="fsync the Raft journal per batch, term/vote and snapshots (off: a power cut "
                 "may lose acknowledged writes; see docs/operations.md)"),
        raft_max_inflight: int = typer.Option(
            RaftSettings.max_inflight_batches, "--raft-max-inflight", hidden=True,
            help="Raft entries in flight at once (benchmarks)"),
        raft_snapshot_entries: int = typer.Option(
            RaftSettings.compaction_min_entries, "--raft-snapshot-entries",
            help="journal entries after which a server snapshots its state (bounds what a "
                 "restarted server replays; see docs/operations.md)"),
        raft_snapshot_mib: float = typer.Option(
            RaftSettings.compaction_max_bytes / (1 << 20), "--raft-snapshot-mib",
            help="MiB of applied journal entries after which a server snapshots its state "
                 "(entries hold from one command to a batch; see docs/operations.md)"),
    ) -> None:
        """Run one master of a cluster (3 or 5 of them, one --peers list each)."""
        _setup_logging(log_level)
        try:
            if secret_file is not None:
                secret = read_secret_file(str(secret_file), "Raft secret")
            elif os.environ.get("FEDERATION_RAFT_SECRET"):
                secret = os.environ["FEDERATION_RAFT_SECRET"].strip()
            else:
                raise ValidationError(
                    "a Raft secret is required: pass --secret-file FILE or set "
                    "FEDERATION_RAFT_SECRET (Raft traffic is unpickled: an open Raft port "
                    "would let anyone run code on this server)")
            token = read_secret_file(str(token_file), "API token") if token_file else None
            join = (read_secret_file(str(join_token_file), "join token")
                    if join_token_file else None)
            networks = parse_networks(agent_networks)
        except FederationError as exc:
            _fail(str(exc))
            return
        config = ServerConfig(
            id=id, data_dir=str(data_dir), http=http, raft=raft, secret=secret,
            peers=[p.strip() for p in peers.split(",") if p.strip()], token=token,
            insecure=insecure, heartbeat_ttl=heartbeat_ttl, heartbeat_grace=heartbeat_grace,
            max_heartbeats_per_second=max_heartbeats_per_second,
            max_body_bytes=max_body_bytes, requests_per_turn=requests_per_turn,
            join_token=join, agent_networks=networks,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            tls_ca=str(tls_ca) if tls_ca else None, tls_verify_clients=tls_verify_clients,
            gc=GcSettings(interval=gc_interval, policy=GcPolicy(
                periodic_keep=gc_periodic_keep, job_age=gc_job_age,
                allocs_per_job=gc_allocs_per_job)),
            raft_settings=replace(RaftSettings(), max_batch=max(1, raft_max_batch),
                                  max_inflight_batches=max(1, raft_max_inflight),
                                  fsync=raft_fsync,
                                  compaction_min_entries=max(100, raft_snapshot_entries),
                                  compaction_max_bytes=max(1 << 16,
                                                           int(raft_snapshot_mib * (1 << 20)))),
        )
        _run(config, providers)

    @app.command()
    def dev(
        data_dir: Path = typer.Option(
            Path(".dev-data"), "--data-dir", help="where the dev cluster keeps its state"),
        http: str = typer.Option(DEV_ADDRESS, "--http"),
        raft: str = typer.Option(DEV_RAFT, "--raft"),
        agents: int = typer.Option(2, "--agents", min=0, help="local agents to run"),
        fresh: bool = typer.Option(
            False, "--fresh", help="start from an empty state: delete --data-dir's jobs, "
            "nodes, drains and token first (the venv and anything else are kept)"),
        log_level: str = typer.Option("info", "--log-level"),
    ) -> None:
        """A dev cluster on this machine: one server and local agents, until Ctrl-C.

        State, the API token and the agents' logs are kept in --data-dir (so a restart keeps
        its jobs; --fresh starts empty). Every process it started (server, agents, their
        tasks) is stopped on Ctrl-C or SIGTERM.
        """
        import subprocess
        import threading

        _setup_logging(log_level)
        for address, option in ((http, "--http"), (raft, "--raft")):
            if listening(address):
                _fail(f"something already listens on {address} ({option}): a dev cluster "
                      "started earlier? Stop it (Ctrl-C in its shell), or start another one "
                      "with other --http, --raft and --data-dir")
                return
        data_dir = data_dir.resolve()
        if fresh:
            try:
                wipe_dev_data(data_dir)
            except ValidationError as exc:
                _fail(exc.message)
                return
        data_dir = private_dir(data_dir)
        files: dict[str, str] = {}
        for name in ("raft.secret", "api.token", "join.token"):
            path = data_dir / name
            if not path.exists():
                write_private(path, secrets.token_urlsafe(32).encode())
            files[name] = path.read_text().strip()
        token = files["api.token"]
        config = ServerConfig(
            id="dev", data_dir=str(data_dir / "server"), http=http, raft=raft,
            secret=files["raft.secret"], token=token, join_token=files["join.token"],
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        from federation.server.master import Master
        from federation.tracing import configure_tracing

        try:
            configure_tracing("federation-dev")  # the OTEL_* settings `server` honours
            master = Master(config)
            master.start()
        except (FederationError, ValueError) as exc:
            _fail(str(exc))
            return
        procs: list[subprocess.Popen[bytes]] = []
        try:
            from federation.agent.agent import detect_memory_mib

            # The agents share this machine: each offers its share of it.
            cpu_milli = max(1000, (os.cpu_count() or 1) * 1000 // max(1, agents))
            memory_mib = max(256, detect_memory_mib() // max(1, agents))
            # Agents get the join secret (register a node, nothing else), never the API token.
            env = {k: v for k, v in os.environ.items() if k != "FEDERATION_TOKEN"}
            for n in range(1, agents + 1):
                log_file = open(data_dir / f"agent-{n}.log", "ab")  # noqa: SIM115
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "federation.cli.main", "agent",
                     "--server", config.http_url, "--data-dir", str(data_dir / f"agent-{n}"),
                     "--name", f"dev-agent-{n}", "--pool", "dev", "--cpu", str(cpu_milli),
                     "--memory", str(memory_mib),
                     "--join-token-file", str(data_dir / "join.token"),
                     "--stop-tasks-on-exit", "--log-level", log_level],
                    stdout=log_file, stderr=log_file, env=env, start_new_session=True))
                log_file.close()
            typer.echo(f"federation dev: 1 server, {agents} agents (logs in {data_dir})")
            typer.echo(f"  export FEDERATION_ADDR={config.http_url}")
            typer.echo(f"  export FEDERATION_TOKEN={token}")
            typer.echo("  federation job run examples/hello-batch.yaml   (Ctrl-C to stop)")
            stop.wait()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # agents stop their tasks, then exit
            for proc in procs:
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            master.stop()
            typer.echo("federation dev: stopped", err=True)
