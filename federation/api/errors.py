"""Every error the API returns has one shape: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from federation.errors import FederationError
from federation.specs.job import field_path

log = logging.getLogger("federation.api")

_STATUS_CODES = {
    400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
}


def error_response(status: int, body: dict[str, object]) -> JSONResponse:
    return JSONResponse({"error": body}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FederationError)
    async def _federation(request: Request, exc: FederationError) -> JSONResponse:
        return error_response(exc.http_status, exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = tuple(first.get("loc", ()))
        if loc and loc[0] in ("query", "path", "header", "body"):
            loc = loc[1:]
        body: dict[str, object] = {"code": "invalid", "message": str(first.get("msg", "invalid"))}
        if loc:
            body["field"] = field_path(loc)
        return error_response(400, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, {"code": code, "message": str(exc.detail)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, {"code": "internal", "message": "internal server error"})
