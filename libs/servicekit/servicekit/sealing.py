"""Secrets at rest: AES-256-GCM under a ring of versioned keys that can rotate.

A setting such as `VAULT_KEYS=v1:<base64 of 32 bytes>,v2:...` lists the keys, and a second one
(`VAULT_ACTIVE_KEY=v2`) names the key new values are sealed under. A sealed value is the text
`{version}:{base64url(nonce || ciphertext+tag)}`, so every value says which key opens it: old keys keep
working until a rotation re-seals everything under the active key. Each value is bound, as associated data,
to where it is stored (`grants/{id}/refresh_token`), so an envelope copied to another row does not open.
Errors carry reasons prefixed per use (`VAULT_KEY_UNKNOWN`, `WEBHOOK_SECRET_DECRYPT_FAILED`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from servicekit import errors

KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(ValueError):
    """The key settings are malformed; the message says how, and never holds a key."""


@dataclass(frozen=True)
class KeyRing:
    """The configured keys by version, the version new values are sealed under, and the error prefix."""

    keys: dict[str, bytes] = field(repr=False)
    active: str
    reason_prefix: str = "SEALED"

    def key(self, version: str) -> bytes:
        """The key of `version`; INTERNAL `{prefix}_KEY_UNKNOWN` when it is no longer configured."""
        try:
            return self.keys[version]
        except KeyError:
            raise errors.Internal(
                f"a stored secret is sealed under key {version!r}, which is not configured",
                reason=f"{self.reason_prefix}_KEY_UNKNOWN",
                metadata={"key_version": version},
            ) from None


def parse_key_ring(
    entries: Sequence[str], active: str, *, keys_setting: str, active_setting: str, reason_prefix: str
) -> KeyRing | None:
    """The key ring from settings; None when no key is configured (the caller then disables sealing)."""
    if not entries:
        if active:
            raise KeyRingError(f"{active_setting} is set but {keys_setting} is empty")
        return None
    ring: dict[str, bytes] = {}
    for entry in entries:
        version, sep, encoded = entry.partition(":")
        if not sep or not _VERSION.match(version):
            raise KeyRingError(f"each {keys_setting} entry must look like <version>:<base64 of 32 bytes>")
        if version in ring:
            raise KeyRingError(f"{keys_setting} lists version {version!r} twice")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != KEY_BYTES:
            raise KeyRingError(f"{keys_setting} entry {version!r} is not base64 of exactly 32 bytes")
        ring[version] = raw
    if not active:
        if len(ring) != 1:
            raise KeyRingError(f"{active_setting} must name one of several {keys_setting} versions")
        active = next(iter(ring))
    if active not in ring:
        raise KeyRingError(f"{active_setting} {active!r} is not one of the {keys_setting} versions")
    return KeyRing(keys=ring, active=active, reason_prefix=reason_prefix)


def version_of(envelope: str) -> str:
    """The key version a stored value is sealed under."""
    return envelope.partition(":")[0]


class Sealer:
    """Seals and opens values under a key ring; the key material never leaves this object."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    @property
    def active_version(self) -> str:
        """The key version new values are sealed under."""
        return self._ring.active

    def seal(self, plaintext: str, binding: str) -> str:
        """The envelope of `plaintext`, sealed under the active key and bound to `binding`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._ring.key(self._ring.active)).encrypt(
            nonce, plaintext.encode(), binding.encode()
        )
        return f"{self._ring.active}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, envelope: str, binding: str) -> str:
        """The plaintext of an envelope; INTERNAL `{prefix}_DECRYPT_FAILED` when altered or moved."""
        version, sep, encoded = envelope.partition(":")
        try:
            raw = base64.urlsafe_b64decode(encoded)
        except (binascii.Error, ValueError):
            raw = b""
        prefix = self._ring.reason_prefix
        if not sep or not _VERSION.match(version) or len(raw) <= NONCE_BYTES:
            raise errors.Internal(
                "a stored secret is not a sealed envelope", reason=f"{prefix}_ENVELOPE_INVALID"
            )
        try:
            plaintext = AESGCM(self._ring.key(version)).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], binding.encode()
            )
        except InvalidTag:
            raise errors.Internal(
                "a stored secret failed its integrity check", reason=f"{prefix}_DECRYPT_FAILED"
            ) from None
        return plaintext.decode()

    def needs_reseal(self, envelope: str) -> bool:
        """Tells whether an envelope is sealed under a key other than the active one."""
        return version_of(envelope) != self._ring.active
