"""Per-account webhook signing secrets and the Standard Webhooks signature over a delivery.

A secret is `whsec_` followed by the base64 of 32 random bytes; the HMAC key is those bytes. Each delivery
attempt is signed with every secret still valid for the account (the current one, and the previous one during
its rotation grace period), so a receiver that rotates in its own time keeps verifying.

At rest secrets are sealed with AES-256-GCM under a versioned key ring from `WEBHOOK_SECRET_KEYS`
(`v1:<base64 of 32 bytes>,v2:...`) with `WEBHOOK_SECRET_ACTIVE_KEY` naming the one new secrets use. This
module holds the format and the configuration; the cipher lives in the adapters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from servicekit import errors

PREFIX = "whsec_"
SECRET_BYTES = 32
KEY_BYTES = 32
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=7)
_VERSION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


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


class KeyConfigError(ValueError):
    """WEBHOOK_SECRET_KEYS or WEBHOOK_SECRET_ACTIVE_KEY is malformed; the message never holds a key."""


@dataclass(frozen=True)
class KeyRing:
    """The configured sealing keys by version, and the version new secrets are sealed under."""

    keys: dict[str, bytes] = field(repr=False)
    active: str

    def key(self, version: str) -> bytes:
        """The key of `version`; INTERNAL WEBHOOK_SECRET_KEY_UNKNOWN when it is no longer configured."""
        try:
            return self.keys[version]
        except KeyError:
            raise errors.Internal(
                f"a webhook secret is sealed under key {version!r}, which is not configured",
                reason="WEBHOOK_SECRET_KEY_UNKNOWN",
                metadata={"key_version": version},
            ) from None


def parse_key_ring(entries: Sequence[str], active: str) -> KeyRing | None:
    """The key ring from settings; None when no key is configured (secrets cannot be created then)."""
    if not entries:
        if active:
            raise KeyConfigError("WEBHOOK_SECRET_ACTIVE_KEY is set but WEBHOOK_SECRET_KEYS is empty")
        return None
    ring: dict[str, bytes] = {}
    for entry in entries:
        version, sep, encoded = entry.partition(":")
        if not sep or not _VERSION.match(version) or version in ring:
            raise KeyConfigError("each WEBHOOK_SECRET_KEYS entry must be <unique version>:<base64>")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != KEY_BYTES:
            raise KeyConfigError(f"WEBHOOK_SECRET_KEYS entry {version!r} is not base64 of 32 bytes")
        ring[version] = raw
    active = active or (next(iter(ring)) if len(ring) == 1 else "")
    if active not in ring:
        raise KeyConfigError("WEBHOOK_SECRET_ACTIVE_KEY must name one of the WEBHOOK_SECRET_KEYS versions")
    return KeyRing(ring, active)
