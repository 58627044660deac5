"""The OpenAPI document is complete, and a fuzzer driven by it gets no 5xx from a real server.

schemathesis reads ``/openapi.json`` from a running server and sends every operation
examples generated from its schemas (bounded per operation so the run stays short); every
answer must be below 500, and every error must be in the one error shape.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.harness import Cluster

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def document(single: Cluster) -> dict:
    response = httpx.get(single.servers[0].url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def _resolves(doc: dict, ref: str) -> bool:
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_ref_in_the_document_resolves(document: dict) -> None:
    refs = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(document)))
    assert refs, "the document references its component schemas"
    assert [r for r in refs if not _resolves(document, r)] == []


def test_every_operation_declares_the_error_answers_in_the_error_shape(document: dict) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "404", "409", "413", "422", "503"):
                answer = operation["responses"].get(status)
                assert answer is not None, (method, path, status)
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


def test_every_body_taking_operation_describes_its_body(document: dict) -> None:
    with_body = {(m.upper(), p) for p, ops in document["paths"].items()
                 for m, op in ops.items() if "requestBody" in op}
    assert {("POST", "/v1/jobs"), ("POST", "/v1/jobs/plan"), ("POST", "/v1/nodes"),
            ("PUT", "/v1/pools/{name}"), ("PUT", "/v1/queues/{name}"),
            ("POST", "/v1/nodes/{node_id}/allocations"), ("POST", "/v1/nodes/{node_id}/drain"),
            ("POST", "/v1/snapshot")} <= with_body


def _check(case) -> None:
    if case.query and ("wait" in case.query or "index" in case.query):
        case.query["wait"] = 0.2  # a blocking query waits at most this long here
    response = case.call(timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


def test_no_generated_request_gets_a_5xx(single: Cluster) -> None:
    api = schemathesis.openapi.from_url(single.servers[0].url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        # No shrinking: a failure is reported as found (with its curl line), at once.
        run = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                       phases=[Phase.explicit, Phase.generate],
                       suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy())(_check))
        run()
