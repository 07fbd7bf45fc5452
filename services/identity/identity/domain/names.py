"""Resource names of the identity context: `users/{id}`, `apiKeys/{id}`, `sessions/{id}`, `grants/{id}`."""

from __future__ import annotations

import uuid

from servicekit import errors

USERS = "users/"
API_KEYS = "apiKeys/"
SESSIONS = "sessions/"
GRANTS = "grants/"
ME = "users/me"


def parse(name: str, collection: str, field: str = "name") -> str:
    """The id in `{collection}{id}`; INVALID_ARGUMENT FIELD_INVALID naming `field` when malformed."""
    ident = name.removeprefix(collection)
    try:
        if not name.startswith(collection):
            raise ValueError
        return str(uuid.UUID(ident))
    except ValueError:
        raise errors.InvalidArgument(
            f"{field} must look like {collection}{{id}}, got {name[:80]!r}",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, f"expected {collection}{{id}}"),),
        ) from None


def request_id(value: str, field: str = "request_id") -> str:
    """A client-chosen idempotency key, which must be a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.InvalidArgument(
            f"{field} must be a UUID chosen by the client and reused on retries",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field, "required; a UUID"),),
        ) from None


def new_id() -> str:
    """A new opaque server-assigned id."""
    return str(uuid.uuid4())
