"""Per-account webhook signing secrets and the Standard Webhooks signature over a delivery.

A secret is `whsec_` followed by the base64 of 32 random bytes; the HMAC key is those bytes. Each delivery
attempt is signed with every secret still valid for the account (the current one, and the previous one during
its rotation grace period), so a receiver that rotates in its own time keeps verifying.

At rest secrets are sealed by servicekit.sealing under the key ring of `WEBHOOK_SECRET_KEYS` and
`WEBHOOK_SECRET_ACTIVE_KEY`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from servicekit import errors

PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=7)


def generate() -> str:
    """A new random signing secret."""
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def mask(secret: str) -> str:
    """The secret as it may be shown again: the prefix and its last four characters."""
    return f"{PREFIX}…{secret[-4:]}"


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One `v1,<base64 HMAC-SHA256>` entry over `{id}.{timestamp}.{body}`."""
    digest = hmac.new(_key(secret), f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: one entry per valid secret, separated by spaces."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)


def grace_period(requested: timedelta | None) -> timedelta:
    """How long the previous secret keeps signing; INVALID_ARGUMENT GRACE_PERIOD_INVALID out of 0..7 days."""
    if requested is None:
        return DEFAULT_GRACE
    if requested < timedelta(0) or requested > MAX_GRACE:
        raise errors.InvalidArgument(
            "the grace period must be between 0 and 7 days",
            reason="GRACE_PERIOD_INVALID",
            violations=(errors.FieldViolation("previous_secret_grace_period", "from 0 to 7 days"),),
        )
    return requested


@dataclass(frozen=True)
class SecretVersion:
    """One stored version of an account's secret; `expire_time` is set once a newer version replaced it."""

    owner: str
    version: int
    sealed: str = field(repr=False)
    masked: str
    create_time: datetime
    expire_time: datetime | None = None
    request_id: str = ""
    request_hash: str = ""

    def signs_at(self, now: datetime) -> bool:
        """Whether this version still signs deliveries at `now`."""
        return self.expire_time is None or self.expire_time > now
