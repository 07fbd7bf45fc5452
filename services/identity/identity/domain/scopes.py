"""The documented scopes an API key may carry; a session holds all of them."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit import errors

JOBS_READ = "jobs:read"
JOBS_WRITE = "jobs:write"
PRESETS_READ = "presets:read"
UPLOADS_WRITE = "uploads:write"
WEBHOOKS_MANAGE = "webhooks:manage"
USAGE_READ = "usage:read"
BILLING_MANAGE = "billing:manage"
DRIVE_MANAGE = "drive:manage"
KEYS_MANAGE = "keys:manage"

ALL_SCOPES: frozenset[str] = frozenset(
    {
        JOBS_READ,
        JOBS_WRITE,
        PRESETS_READ,
        UPLOADS_WRITE,
        WEBHOOKS_MANAGE,
        USAGE_READ,
        BILLING_MANAGE,
        DRIVE_MANAGE,
        KEYS_MANAGE,
    }
)


def parse_scopes(requested: Iterable[str], field: str = "scopes") -> frozenset[str]:
    """The requested scopes as a set; INVALID_ARGUMENT SCOPE_UNKNOWN names every unknown one."""
    scopes = [scope.strip() for scope in requested]
    if not scopes:
        raise errors.InvalidArgument(
            "at least one scope is required",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, "at least one scope is required"),),
        )
    unknown = sorted({scope for scope in scopes if scope not in ALL_SCOPES})
    if unknown:
        raise errors.InvalidArgument(
            f"unknown scopes {', '.join(map(repr, unknown))}; known: {', '.join(sorted(ALL_SCOPES))}",
            reason="SCOPE_UNKNOWN",
            metadata={"scopes": ",".join(unknown)},
            violations=tuple(
                errors.FieldViolation(field, f"{scope!r} is not a documented scope") for scope in unknown
            ),
        )
    return frozenset(scopes)
