"""Every route of the API declares the capability it needs (generated from the app)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from federation.api.acl import declared_needs, effective_routes
from federation.api.app import create_app
from federation.server.config import ServerConfig
from tests.harness import SECRET

# FastAPI's own schema and documentation pages, served only on clusters without a token.
FRAMEWORK_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# The UI's vendored scripts and styles: public files, no state behind them.
STATIC_MOUNTS = {"/ui/static"}


def app(token: str | None):
    config = ServerConfig(id="t", data_dir="/nonexistent", http="127.0.0.1:1",
                          raft="127.0.0.1:2", secret=SECRET, token=token)
    from federation.api.admission import TurnBudget
    from federation.api.metrics import ServerMetrics

    master = SimpleNamespace(config=config, tracer_provider=None, metrics=None,
                             admission=TurnBudget())

    master.metrics = ServerMetrics()
    return create_app(master)


@pytest.mark.parametrize("token", [None, "bootstrap-token"], ids=["open", "with-token"])
def test_every_route_declares_a_capability(token: str | None) -> None:
    application = app(token)
    routes = effective_routes(application.routes)
    assert len(routes) > 30
    undeclared = [f"{methods} {path}" for methods, path, dependant in routes
                  if path not in FRAMEWORK_PAGES | STATIC_MOUNTS
                  and (dependant is None or not declared_needs(dependant))]
    assert undeclared == []
    if token is not None:  # with a token, the framework's open pages are gone
        framework = {path for _, path, dependant in routes if dependant is None}
        assert not (framework & FRAMEWORK_PAGES)


def test_the_check_sees_a_route_without_a_declaration() -> None:
    application = app(None)

    @application.get("/v1/forgotten")
    async def forgotten() -> dict:
        return {}

    (dependant,) = [d for _, path, d in effective_routes(application.routes)
                    if path == "/v1/forgotten"]
    assert declared_needs(dependant) == []
