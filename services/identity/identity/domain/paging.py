"""Keyset page tokens for "newest first" listings: the (create_time, id) of the last item of a page."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from servicekit import errors

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the item created at `create_time` with id `id`."""

    create_time: datetime
    id: str


def page_size(requested: int) -> int:
    """The effective page size: 0 means the default, larger values are capped, negative is refused."""
    if requested < 0:
        raise errors.InvalidArgument(
            "page_size must not be negative",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation("page_size", "must be >= 0"),),
        )
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(cursor: Cursor) -> str:
    """An opaque token for `cursor`."""
    raw = json.dumps([cursor.create_time.isoformat(), cursor.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> Cursor | None:
    """The cursor in a token from `encode`, None for none; else INVALID_ARGUMENT PAGE_TOKEN_INVALID."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, ident = json.loads(raw)
        moment = datetime.fromisoformat(str(when))
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return Cursor(create_time=moment, id=str(uuid.UUID(str(ident))))
    except (ValueError, TypeError):
        raise errors.InvalidArgument(
            "page_token is not a token returned by this method",
            reason="PAGE_TOKEN_INVALID",
            violations=(errors.FieldViolation("page_token", "not a token returned by this method"),),
        ) from None
