"""One trace from the caller's span through the API to the Raft commit."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from federation.client import Client
from federation.server import Master, ServerConfig
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
