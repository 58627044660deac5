"""OpenTelemetry set-up shared by the server and the CLI.

Exporters are chosen with the standard variables: ``OTEL_TRACES_EXPORTER`` = ``none``
(default here: nothing leaves the process unless asked), ``console`` or ``otlp`` (OTLP over
HTTP; ``OTEL_EXPORTER_OTLP_ENDPOINT`` and friends are read by the exporter itself).
``OTEL_SERVICE_NAME`` names the service.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

EXPORTERS = ("none", "console", "otlp")


def configure_tracing(default_service: str = "federation") -> TracerProvider | None:
    """Install a global tracer provider according to ``OTEL_*``; None when tracing is off."""
    exporters = [
        e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if e.strip()
    ]
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter {unknown[0]!r} (use none, console, otlp)"
        )
    exporters = [e for e in exporters if e != "none"]
    if not exporters:
        return None
    service = os.environ.get("OTEL_SERVICE_NAME", default_service)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for name in exporters:
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider
