"""Prometheus metrics of one server, on a registry of its own (several servers may share a
process in tests), plus an ASGI middleware timing every request by route template."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.is_leader = Gauge("federation_raft_leader", "1 when this server leads", registry=r)
        self.term = Gauge("federation_raft_term", "current Raft term", registry=r)
        self.commit_index = Gauge("federation_raft_commit_index", "Raft commit index", registry=r)
        self.state_index = Gauge("federation_state_index", "state machine index", registry=r)
        self.state_objects = Gauge(
            "federation_state_objects", "nodes, jobs and allocations (any status) in the state",
            ["kind"], registry=r,
        )
        self.rejected = Gauge(
            "federation_raft_rejected_connections",
            "Raft connections closed before authenticating", registry=r,
        )
        self.commands = Counter(
            "federation_commands", "commands committed, by type and outcome",
            ["type", "outcome"], registry=r,
        )
        self.commit_latency = Histogram(
            "federation_commit_seconds", "time from submit to applied result",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.autoscaler_ticks = Counter(
            "federation_autoscaler_ticks", "autoscaler passes this server ran as leader",
            registry=r,
        )
        self.request_latency = Histogram(
            "federation_http_request_seconds", "HTTP request latency",
            ["method", "route", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )


class RequestTimer:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: Callable[..., Any], metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.request_latency.labels(
                scope["method"], template, str(status["code"])
            ).observe(time.perf_counter() - start)
