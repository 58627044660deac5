"""The examples run as written on real agents."""

from __future__ import annotations

from pathlib import Path

import httpx

from federation.specs.job import parse_document
from tests.agent.conftest import Fed
from tests.harness import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _submit(fed: Fed, name: str) -> dict:
    spec = parse_document((EXAMPLES / name).read_text(), content_type="yaml")
    fed.run(spec)
    return spec


def _status(fed: Fed, job_id: str) -> str:
    return fed.http.get(f"/v1/jobs/{job_id}").json()["status"]


def test_the_service_chain_and_gang_examples_run(fed: Fed, agents) -> None:
    agents("a1"), agents("a2")
    _submit(fed, "service-health.yaml")
    for name in ("pipeline-extract.yaml", "pipeline-transform.yaml", "pipeline-load.yaml",
                 "gang-training.yaml"):
        _submit(fed, name)
    wait_for(lambda: all(_status(fed, j) == "complete"
                         for j in ("extract", "transform", "load", "gang-training")),
             60, "the chain and the gang to complete")
    extract_done = max(a["finished_at"] for a in fed.allocs("extract"))
    assert min(a["started_at"] for a in fed.allocs("transform")) >= extract_done
    running = fed.wait_allocs("greeter", 2, "running")
    for alloc in running:
        wait_for(lambda a=alloc: fed.alloc(a["id"]).get("healthy"), 20, "greeter healthy")
        port = fed.alloc(alloc["id"])["ports"]["http"]
        assert httpx.get(f"http://127.0.0.1:{port}/").text == f"hello from {alloc['id']}"
