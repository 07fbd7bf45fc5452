"""Conversion between domain errors and rich gRPC statuses (`google.rpc.Status` with typed details).

Servers turn a DomainError into a status with ErrorInfo, BadRequest and RetryInfo; clients turn a failed
call back into the same DomainError, so a NotFound raised two hops away arrives as a NotFound with its
reason intact.
"""

from __future__ import annotations

import math

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from servicekit import errors

ERROR_DOMAIN = "comfyapi"
DETAILS_KEY = "grpc-status-details-bin"


def grpc_code(error: errors.DomainError) -> grpc.StatusCode:
    """The gRPC status code of a domain error."""
    return grpc.StatusCode[error.code]


def to_status(error: errors.DomainError) -> status_pb2.Status:
    """Packs a domain error into `google.rpc.Status` with ErrorInfo, and BadRequest / RetryInfo when set."""
    status = status_pb2.Status(code=code_pb2.Code.Value(error.code), message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    )
    if error.violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if error.retry_after is not None:
        seconds = max(0.0, error.retry_after)
        delay = duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


def trailing_metadata(error: errors.DomainError) -> tuple[tuple[str, bytes], ...]:
    """The trailing metadata that carries the rich status to the client."""
    return ((DETAILS_KEY, to_status(error).SerializeToString()),)


def from_rpc_error(exc: grpc.aio.AioRpcError) -> errors.DomainError:
    """Rebuilds the domain error a server raised; transport failures become Unavailable or Internal."""
    code = exc.code().name if exc.code() is not None else "UNKNOWN"
    details = None
    for key, value in exc.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            details = status_pb2.Status.FromString(value)
    return _rebuild(code, exc.details() or code, details)


def from_status(status: status_pb2.Status) -> errors.DomainError:
    """The domain error a `google.rpc.Status` made by `to_status` stands for."""
    code = code_pb2.Code.Name(status.code)
    return _rebuild(code, status.message or code, status)


def _rebuild(code: str, message: str, status: status_pb2.Status | None) -> errors.DomainError:
    reason, metadata = code, {}
    violations: list[errors.FieldViolation] = []
    retry_after: float | None = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(errors.FieldViolation(v.field, v.description) for v in bad.field_violations)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info_retry = error_details_pb2.RetryInfo()
                detail.Unpack(info_retry)
                retry_after = info_retry.retry_delay.seconds + info_retry.retry_delay.nanos / 1e9
    kind = errors.KINDS.get(code)
    if kind is None:
        kind = errors.Unavailable if code == "CANCELLED" else errors.Internal
        reason = reason if reason != code else f"UPSTREAM_{code}"
    return kind(
        message,
        reason=reason,
        metadata=metadata,
        violations=tuple(violations),
        retry_after=None if retry_after is None or math.isnan(retry_after) else retry_after,
    )
