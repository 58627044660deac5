"""One trace from the caller's span through the API to the Raft commit."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from federation.client import Client
from federation.server.config import ServerConfig
from federation.server.master import Master
from tests.harness import SECRET, free_ports, wait_for


def test_the_client_span_continues_on_the_server_and_the_raft_commit(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    http_port, raft_port = free_ports(2)
    master = Master(ServerConfig(id="t1", data_dir=str(tmp_path), http=f"127.0.0.1:{http_port}",
                                 raft=f"127.0.0.1:{raft_port}", secret=SECRET),
                    tracer_provider=provider)
    master.start()
    try:
        wait_for(lambda: master.raft.is_leader(), 10, "leadership")
        tracer = provider.get_tracer("deploy-tool")
        with Client(f"http://127.0.0.1:{http_port}") as client:
            with tracer.start_as_current_span("deploy") as caller:
                client.submit_job({"id": "traced", "type": "batch", "groups": [{
                    "name": "g", "resources": {"cpu": 10, "memory": 10},
                    "task": {"command": ["true"]}}]})
        trace_id = caller.get_span_context().trace_id
        spans = wait_for(lambda: [s for s in exporter.get_finished_spans()
                                  if s.context.trace_id == trace_id and s.name == "raft.commit"]
                         and exporter.get_finished_spans(), 5, "the commit span")
        mine = [s for s in spans if s.context.trace_id == trace_id]
        server_spans = [s for s in mine if s.kind.name == "SERVER"]
        commit = next(s for s in mine if s.name == "raft.commit")
        assert server_spans, [s.name for s in mine]
        assert server_spans[0].parent.span_id == caller.get_span_context().span_id
        assert commit.attributes["federation.command.type"] == "job.register"
        assert commit.attributes["federation.raft.index"] >= 1
        assert commit.attributes["federation.raft.term"] >= 1
        assert "federation.commit.latency_ms" in commit.attributes
        names = {s.name for s in mine}
        assert not any("Bearer" in str(s.attributes) for s in mine), names
    finally:
        master.stop()


def test_each_sdk_call_is_a_client_span_between_the_caller_and_the_server(
        tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    http_port, raft_port = free_ports(2)
    master = Master(ServerConfig(id="t1", data_dir=str(tmp_path), http=f"127.0.0.1:{http_port}",
                                 raft=f"127.0.0.1:{raft_port}", secret=SECRET),
                    tracer_provider=provider)
    master.start()
    try:
        wait_for(lambda: master.raft.is_leader(), 10, "leadership")
        tracer = provider.get_tracer("deploy-tool")
        with Client(f"http://127.0.0.1:{http_port}", tracer_provider=provider) as client:
            with tracer.start_as_current_span("deploy") as caller:
                client.list_jobs()
        trace_id = caller.get_span_context().trace_id
        mine = wait_for(lambda: [s for s in exporter.get_finished_spans()
                                 if s.context.trace_id == trace_id
                                 and s.kind.name == "SERVER"]
                        and [s for s in exporter.get_finished_spans()
                             if s.context.trace_id == trace_id], 5, "the server span")
        (call,) = [s for s in mine if s.kind.name == "CLIENT"]
        assert call.name == "GET /v1/jobs"
        assert call.parent.span_id == caller.get_span_context().span_id
        assert call.attributes["http.response.status_code"] == 200
        server = next(s for s in mine if s.kind.name == "SERVER")
        assert server.parent.span_id == call.context.span_id
    finally:
        master.stop()


class Collector:
    """An OTLP/HTTP trace receiver on loopback: what the exporters of real processes send."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.spans: list[dict] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    service = next((a.value.string_value for a in resource.resource.attributes
                                    if a.key == "service.name"), "")
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            collector.spans.append({
                                "service": service, "name": span.name, "kind": span.kind,
                                "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex()})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_cli_span_is_the_parent_of_the_dev_clusters_spans(tmp_path: Path) -> None:
    """`federation dev` exports as `federation server` does (OTEL_*); the CLI sends a CLIENT
    span per API call, and the server's span for that call is its child."""
    collector = Collector()
    http_port, raft_port = free_ports(2)
    otel = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100"}
    env = {**os.environ, **otel}
    env.pop("OTEL_SERVICE_NAME", None)
    data = tmp_path / "dev"
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115 - closed below
    dev = subprocess.Popen(
        [sys.executable, "-m", "federation.cli.main", "dev", "--agents", "0", "--data-dir",
         str(data), "--http", f"127.0.0.1:{http_port}", "--raft", f"127.0.0.1:{raft_port}"],
        stdout=log, stderr=log, env=env)
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_for(lambda: _healthy(url), 30, "the dev cluster")
        token = (data / "api.token").read_text().strip()
        wait_for(lambda: _leader(url, token), 30, "a leader")
        cli = subprocess.run(
            [sys.executable, "-m", "federation.cli.main", "job", "list"],
            env={**env, "FEDERATION_ADDR": url, "FEDERATION_TOKEN": token},
            capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        client = wait_for(lambda: next((s for s in collector.spans
                                        if s["service"] == "federation-cli"), None),
                          10, "the CLI's span")
        assert client["name"].startswith("GET /v1/jobs") and client["kind"] == 3  # CLIENT
        server = wait_for(lambda: next((s for s in collector.spans
                                        if s["service"] == "federation-dev"
                                        and s["parent"] == client["span_id"]), None),
                          10, "the dev server's span under the CLI's")
        assert server["trace_id"] == client["trace_id"] and server["kind"] == 2  # SERVER
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait(10)
        log.close()
        collector.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _leader(url: str, token: str) -> bool:
    answer = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"},
                       timeout=2)
    return answer.status_code == 200 and bool(answer.json().get("leader"))
