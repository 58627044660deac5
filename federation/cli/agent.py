"""`federation agent`: run the node agent on this machine."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from federation.errors import FederationError


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected k=v, got {item!r}", param_hint="--labels")
        labels[key.strip()] = value.strip()
    return labels


def register(app: typer.Typer) -> None:
    """Add the `agent` command to the top-level app."""

    @app.command()
    def agent(
        server: str = typer.Option(
            ..., "--server", envvar="FEDERATION_ADDR",
            help="server URL(s), comma-separated; any server of the cluster will do"),
        data_dir: Path = typer.Option(
            ..., "--data-dir", help="where the agent keeps its node identity and allocations"),
        name: str | None = typer.Option(None, "--name", help="node name (default: hostname)"),
        pool: str = typer.Option("default", "--pool"),
        labels: str = typer.Option("", "--labels", help="k=v,k=v"),
        cpu: int | None = typer.Option(None, "--cpu", min=1, help="millicores (default: all)"),
        memory: int | None = typer.Option(
            None, "--memory", min=1, help="MiB (default: all memory)"),
        gpu: int = typer.Option(0, "--gpu", min=0),
        provider: str = typer.Option(
            "", "--provider", show_default=False,
            help="default: the --instance-metadata cloud, else onprem"),
        region: str = typer.Option("", "--region"),
        zone: str = typer.Option("", "--zone"),
        rack: str = typer.Option("", "--rack"),
        instance_type: str = typer.Option("", "--instance-type"),
        instance_id: str = typer.Option("", "--instance-id"),
        instance_metadata: str = typer.Option(
            "", "--instance-metadata", metavar="aws|gcp",
            help="read the instance id, zone, region and instance type (unless given) from "
                 "this cloud's metadata service; the address can be overridden with "
                 "FEDERATION_METADATA_URL"),
        http: str = typer.Option(
            "127.0.0.1:0", "--http",
            help="HOST:PORT of the agent's own endpoint (logs, for the servers)"),
        log_max_bytes: int = typer.Option(
            10 << 20, "--log-max-bytes", min=1024, help="size of one log segment"),
        log_max_files: int = typer.Option(3, "--log-max-files", min=1,
                                          help="segments kept per stream"),
        stop_tasks_on_exit: bool = typer.Option(
            False, "--stop-tasks-on-exit",
            help="stop every task when the agent stops (default: leave them to be adopted)"),
        docker_host: str = typer.Option(
            "unix:///var/run/docker.sock", "--docker-host", envvar="DOCKER_HOST",
            help="the Docker engine the docker driver uses (unix://PATH or tcp://HOST:PORT)"),
        log_level: str = typer.Option("info", "--log-level"),
    ) -> None:
        """Run the node agent: register, heart-beat, run the allocations placed here.

        The API token is read from FEDERATION_TOKEN.
        """
        from federation.agent.agent import Agent, AgentConfig

        logging.basicConfig(
            level=getattr(logging, log_level.upper(), logging.INFO),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        options: dict[str, Any] = {} if name is None else {"name": name}
        where = {"provider": provider, "region": region, "zone": zone,
                 "instance_type": instance_type, "instance_id": instance_id}
        if instance_metadata:
            from federation.agent.metadata import CLOUDS, discover

            if instance_metadata not in CLOUDS:
                raise typer.BadParameter(f"one of {', '.join(CLOUDS)}",
                                         param_hint="--instance-metadata")
            try:
                identity = discover(instance_metadata)
            except FederationError as exc:
                typer.echo(f"Error: {exc}", err=True)
                raise typer.Exit(2) from None
            logging.getLogger("federation.agent").info(
                "instance metadata (%s): instance %s, zone %s, type %s", instance_metadata,
                identity.instance_id, identity.zone, identity.instance_type)
            where = identity.over(where)
        config = AgentConfig(
            servers=[s.strip() for s in server.split(",") if s.strip()],
            data_dir=str(data_dir), pool=pool, labels=_labels(labels), cpu_milli=cpu,
            memory_mib=memory, gpu=gpu, provider=where["provider"] or "onprem",
            region=where["region"], zone=where["zone"], rack=rack,
            instance_type=where["instance_type"], instance_id=where["instance_id"],
            token=os.environ.get("FEDERATION_TOKEN") or None, http_bind=http,
            log_max_bytes=log_max_bytes, log_max_files=log_max_files,
            stop_tasks_on_exit=stop_tasks_on_exit, docker_host=docker_host, **options)
        try:
            node_agent = Agent(config)
        except (FederationError, OSError) as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None

        def on_signal(signum: int, frame: object) -> None:
            node_agent.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # The work runs on a daemon thread (its allocation watch is a long poll); this thread
        # waits for a signal and shuts down without waiting for the poll to return.
        worker = threading.Thread(target=node_agent.run, name="agent", daemon=True)
        worker.start()
        while worker.is_alive() and not node_agent.stop.wait(0.5):
            pass
        node_agent.shutdown()
