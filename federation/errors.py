"""One exception tree for the whole project.

Foreign exceptions (httpx, boto, google, pysyncobj outcomes) are translated into these where
they enter, with ``raise ... from``. Each error knows its stable ``code`` and the HTTP status
the API answers with, so the API, the SDK and the CLI speak of errors the same way::

    FederationError
    ├── ValidationError      400  bad input; ``field`` names the offending field
    ├── Unauthorized         401  no or malformed credentials
    ├── Forbidden            403  credentials present but wrong
    ├── NotFound             404
    ├── Conflict             409  the request conflicts with newer state
    ├── NoLeader             503  no leader is known; ``leader`` carries any hint
    ├── CommitTimeout        503  the command's outcome is unknown; retry with the same id
    └── ProviderError             a capacity source failed
        ├── CapacityError         no capacity of that kind there: move on, do not retry
        ├── QuotaError            an account limit: move on, do not retry
        ├── AuthError             credentials refused by the provider
        └── TransientError        throttling, 5xx, connection reset: retry with backoff
"""

from __future__ import annotations

from typing import Any


class FederationError(Exception):
    code = "internal"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body


class ValidationError(FederationError):
    code = "invalid"
    http_status = 400


class Unauthorized(FederationError):
    code = "unauthorized"
    http_status = 401


class Forbidden(FederationError):
    code = "forbidden"
    http_status = 403


class NotFound(FederationError):
    code = "not_found"
    http_status = 404


class Conflict(FederationError):
    code = "conflict"
    http_status = 409


class NoLeader(FederationError):
    code = "no_leader"
    http_status = 503


class CommitTimeout(FederationError):
    code = "commit_timeout"
    http_status = 503


class ProviderError(FederationError):
    code = "provider_error"
    http_status = 502


class CapacityError(ProviderError):
    code = "provider_capacity"


class QuotaError(ProviderError):
    code = "provider_quota"


class AuthError(ProviderError):
    code = "provider_auth"


class TransientError(ProviderError):
    code = "provider_transient"


_BY_CODE: dict[str, type[FederationError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        NoLeader,
        CommitTimeout,
        ProviderError,
        CapacityError,
        QuotaError,
        AuthError,
        TransientError,
    )
}


def error_from_body(status: int, body: Any) -> FederationError:
    """Rebuild an error from an API error body ``{"error": {...}}`` (used by the SDK)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return FederationError(f"HTTP {status}: {str(body)[:200]}")
    details = {k: v for k, v in err.items() if k not in ("code", "message", "field")}
    cls = _BY_CODE.get(str(err.get("code")), FederationError)
    exc = cls(str(err.get("message", f"HTTP {status}")), field=err.get("field"), **details)
    if cls is FederationError:
        exc.http_status = status
    return exc
