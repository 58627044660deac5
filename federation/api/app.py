"""Builds the FastAPI application of one master."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

import federation
from federation.acl.authorizer import Need
from federation.api import (
    routes_acl,
    routes_agent,
    routes_alloc_control,
    routes_cluster,
    routes_events,
    routes_job_logs,
    routes_jobs,
    routes_members,
    routes_nodes,
    routes_pools,
    routes_queues,
)
from federation.api.acl import require
from federation.api.admission import AdmissionGate
from federation.api.bodies import MAX_BODY_BYTES, BodyLimit
from federation.api.errors import install_error_handlers
from federation.api.kube import routes as kube_routes
from federation.api.metrics import RequestTimer
from federation.api.openapi import build_openapi
from federation.ui import routes as ui_routes


def tracing_enabled(provider: Any) -> bool:
    """Server spans cost time on every request: make them only when someone records them."""
    return isinstance(provider or trace.get_tracer_provider(), TracerProvider)


def create_app(master: Any) -> FastAPI:
    # With ACLs possible (a bootstrap token given), the schema needs a token and the browser
    # pages are off; a cluster bootstrapped later keeps serving them until restarted.
    protected = master.config.token is not None
    app = FastAPI(
        title="federation",
        version=federation.__version__,
        description="One control plane for on-prem racks and cloud instances.",
        # With a token, the schema is served by an authenticated route below and the
        # browser UIs (which cannot send a bearer token) are off.
        openapi_url=None if protected else "/openapi.json",
        docs_url=None if protected else "/docs",
        redoc_url=None if protected else "/redoc",
    )
    app.state.master = master
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    # Routes are matched in order: the agents' calls (most of a large cluster's requests)
    # first. No two routers share a path, so the order decides nothing else.
    app.include_router(routes_nodes.router)
    app.include_router(routes_agent.router)
    app.include_router(routes_cluster.public)
    app.include_router(routes_cluster.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_queues.router)
    app.include_router(routes_pools.router)
    app.include_router(routes_members.router)
    app.include_router(routes_alloc_control.router)
    app.include_router(routes_job_logs.router)
    app.include_router(routes_acl.router)
    kube_routes.install(app)
    app.include_router(routes_events.router)
    ui_routes.install(app)
    if protected:
        @app.get("/openapi.json", include_in_schema=False,
                 dependencies=[Depends(require(Need("authenticated")))])
        async def openapi() -> dict[str, Any]:
            return app.openapi()
    if tracing_enabled(master.tracer_provider):
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=master.tracer_provider, excluded_urls="v1/health,metrics"
        )
    app.add_middleware(RequestTimer, metrics=master.metrics)
    # Outermost: a body over the cap is refused before any other layer reads it.
    app.add_middleware(BodyLimit, max_body_bytes=getattr(
        master.config, "max_body_bytes", MAX_BODY_BYTES))
    # Before everything: a queued request costs nothing until its turn; liveness never waits.
    app.add_middleware(AdmissionGate, budget=master.admission)
    return app
