"""Domain error kinds named after gRPC status codes.

Domain and service code raise these; the server interceptor turns them into a gRPC status carrying
`google.rpc.ErrorInfo` (reason, domain, metadata), `google.rpc.BadRequest` (field violations) and
`google.rpc.RetryInfo` (retry delay). This module imports only the standard library, so `domain/`
packages may depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: `field` is a dotted path into the request (`workflow.3.inputs.seed`)."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every expected failure; `code` is the gRPC status code name it maps to."""

    code = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.violations = violations
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason}: {self.message})"


class InvalidArgument(DomainError):
    """The request is malformed; `violations` name the fields."""

    code = "INVALID_ARGUMENT"


class NotFound(DomainError):
    """The resource does not exist or belongs to someone else."""

    code = "NOT_FOUND"


class AlreadyExists(DomainError):
    """A resource with this identity, or an idempotency key with another body, exists already."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in a state in which the request can run (e.g. a finished job is cancelled)."""

    code = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    """The caller is known but lacks a scope or a right."""

    code = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    """The caller's credentials are missing, invalid or expired."""

    code = "UNAUTHENTICATED"


class ResourceExhausted(DomainError):
    """A quota or rate limit is used up; `retry_after` says when it resets."""

    code = "RESOURCE_EXHAUSTED"


class Aborted(DomainError):
    """A concurrent change won; the caller may retry the whole operation."""

    code = "ABORTED"


class OutOfRange(DomainError):
    """A value is past the valid range, such as a page token beyond the end."""

    code = "OUT_OF_RANGE"


class Unavailable(DomainError):
    """A dependency is down for now; safe to retry after `retry_after` seconds."""

    code = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The work did not finish in the time allowed."""

    code = "DEADLINE_EXCEEDED"


class Unimplemented(DomainError):
    """The operation is part of the contract but not available in this deployment."""

    code = "UNIMPLEMENTED"


class Internal(DomainError):
    """An invariant broke; the message is safe to show, details are in the logs."""

    code = "INTERNAL"


KINDS: dict[str, type[DomainError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Aborted,
        OutOfRange,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
        Internal,
    )
}
