"""The one JSON error shape of the REST API, and the mapping from gRPC codes to HTTP statuses.

Every error answers `{"error": {"code", "status", "message", "details"}}`: `code` is the HTTP status,
`status` the gRPC code name, and `details` carries the reason, metadata and field violations.
"""

from __future__ import annotations

import math
from typing import Any

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from servicekit import context, errors, status
from servicekit.logging import get_logger

log = get_logger("gateway.errors")

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "UNIMPLEMENTED": 501,
}
_HTTP_TO_GRPC = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
}


class EdgeError(errors.DomainError):
    """An error the edge itself answers with an HTTP status no gRPC code names (413, 415)."""

    def __init__(self, http_status: int, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.http_status = http_status
        self.code = _HTTP_TO_GRPC.get(http_status, "INVALID_ARGUMENT")


def violation(field: str, description: str) -> tuple[errors.FieldViolation, ...]:
    """One field violation, as a DomainError's `violations`."""
    return (errors.FieldViolation(field, description),)


def body(http_status: int, grpc_status: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """The error document every failing response carries."""
    details = {**details, "request_id": context.request_id()}
    return {"error": {"code": http_status, "status": grpc_status, "message": message, "details": details}}


def domain_response(error: errors.DomainError) -> JSONResponse:
    """The HTTP answer for a domain error from a backend (or from the gateway itself)."""
    http_status = getattr(error, "http_status", None) or HTTP_STATUS.get(error.code, 500)
    details: dict[str, Any] = {"reason": error.reason, "metadata": error.metadata}
    if error.violations:
        details["field_violations"] = [
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    headers = {}
    if http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="comfyapi"'
    if http_status in (429, 503):
        retry_after = error.retry_after if error.retry_after is not None else 1.0
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        details["retry_after_seconds"] = retry_after
    return JSONResponse(
        body(http_status, error.code, error.message, details), status_code=http_status, headers=headers
    )


async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    return domain_response(exc)


async def on_rpc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    return domain_response(status.from_rpc_error(exc))


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    violations = [
        {"field": ".".join(str(part) for part in item["loc"]), "description": item["msg"]}
        for item in exc.errors()
    ]
    message = "invalid request: " + "; ".join(f"{v['field']}: {v['description']}" for v in violations)
    return JSONResponse(
        body(400, "INVALID_ARGUMENT", message, {"reason": "INVALID_REQUEST", "field_violations": violations}),
        status_code=400,
    )


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    grpc_status = _HTTP_TO_GRPC.get(exc.status_code, "UNKNOWN")
    return JSONResponse(
        body(exc.status_code, grpc_status, str(exc.detail), {"reason": grpc_status}),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("http.crashed", error=repr(exc)[:300], exc_info=exc)
    return JSONResponse(
        body(
            500,
            "INTERNAL",
            "internal error; the request id in the logs has the details",
            {"reason": "INTERNAL"},
        ),
        status_code=500,
    )


HANDLERS: dict[Any, Any] = {
    errors.DomainError: on_domain_error,
    grpc.aio.AioRpcError: on_rpc_error,
    RequestValidationError: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
