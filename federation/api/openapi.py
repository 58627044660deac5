"""The OpenAPI document, complete enough for a client generator or a fuzzer to trust.

FastAPI's own document is amended in three ways:

* request-body schemas given as ``model_json_schema()`` carry their nested models under a
  local ``$defs``, whose ``#/$defs/...`` references do not resolve from the document root;
  they are moved to ``components/schemas`` and the references rewritten;
* every operation declares the error answers it can give (400, 401, 403, 404, 409, 413,
  422, 503) with the one error shape, instead of FastAPI's 422 ``HTTPValidationError``,
  which this API never sends (a bad parameter is a 400 in the error shape);
* bodies read by hand (drain, snapshot restore) are described.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "stable machine-readable code"},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "the offending field, when one is"},
        },
        "additionalProperties": True,
    }},
}
ERROR_RESPONSES = {
    "400": "bad input: the message says what, `field` says where",
    "401": "an API token is required",
    "403": "the token is not valid here",
    "404": "no such object",
    "409": "the request conflicts with newer state",
    "413": "the request body exceeds the cap",
    "422": "the request cannot be applied as it stands",
    "503": "no leader is known, or the outcome is unknown: retry with the same Idempotency-Key",
}
# Bodies that routes read themselves (no pydantic parameter), described here.
EXTRA_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/nodes/{node_id}/drain"): {"required": False, "content": {"application/json": {
        "schema": {"type": "object", "additionalProperties": False, "properties": {
            "deadline": {"type": ["string", "null"], "examples": ["10m"],
                         "description": "batch work still running then is stopped"}}}}}},
    ("post", "/v1/snapshot"): {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "description": "a document from GET /v1/snapshot"}}}},
}
_UNUSED = ("HTTPValidationError", "ValidationError")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, amended (see the module docstring); cached on the app."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _UNUSED:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            extra = EXTRA_BODIES.get((method, path))
            if extra is not None and "requestBody" not in operation:
                operation["requestBody"] = extra
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses[status] = {"description": description, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    _hoist_defs(doc, schemas)
    app.openapi_schema = json.loads(
        json.dumps(doc).replace('"#/$defs/', '"#/components/schemas/'))
    return app.openapi_schema


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every nested ``$defs`` into ``schemas`` (one name, one schema: a clash of two
    different models under one name is a programming error, caught by the tests)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for name, schema in (item.pop("$defs", None) or {}).items():
                if name in schemas and schemas[name] != schema:
                    raise RuntimeError(f"two different schemas are named {name!r}")
                schemas[name] = schema
                stack.append(schema)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
