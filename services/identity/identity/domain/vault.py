"""The token vault's key ring and envelope format.

`VAULT_KEYS` lists versioned 256-bit keys, `v1:<base64>,v2:<base64>`; `VAULT_ACTIVE_KEY` names the one
new secrets are sealed under. A sealed value is the text `{version}:{base64url(nonce || ciphertext+tag)}`,
so every value says which key opens it: old keys keep working until a rotation re-seals everything under
the active key. The cipher itself (AES-256-GCM) lives in the adapters; this module holds the
configuration and the format.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from servicekit import errors

KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class VaultConfigError(ValueError):
    """VAULT_KEYS or VAULT_ACTIVE_KEY is malformed; the message says how, never a key's value."""


@dataclass(frozen=True)
class KeyRing:
    """The configured keys by version, and the version new values are sealed under."""

    keys: dict[str, bytes] = field(repr=False)
    active: str

    def key(self, version: str) -> bytes:
        """The key of `version`; INTERNAL VAULT_KEY_UNKNOWN when it is no longer configured."""
        try:
            return self.keys[version]
        except KeyError:
            raise errors.Internal(
                f"a stored secret is sealed under vault key {version!r}, which is not configured",
                reason="VAULT_KEY_UNKNOWN",
                metadata={"key_version": version},
            ) from None


def parse_key_ring(keys: tuple[str, ...], active: str) -> KeyRing | None:
    """The key ring from settings; None when no key is configured (the vault is then disabled)."""
    if not keys:
        if active:
            raise VaultConfigError("VAULT_ACTIVE_KEY is set but VAULT_KEYS is empty")
        return None
    ring: dict[str, bytes] = {}
    for entry in keys:
        version, sep, encoded = entry.partition(":")
        if not sep or not _VERSION.match(version):
            raise VaultConfigError("each VAULT_KEYS entry must look like <version>:<base64 of 32 bytes>")
        if version in ring:
            raise VaultConfigError(f"VAULT_KEYS lists version {version!r} twice")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != KEY_BYTES:
            raise VaultConfigError(f"VAULT_KEYS entry {version!r} is not base64 of exactly 32 bytes")
        ring[version] = raw
    if not active:
        if len(ring) != 1:
            raise VaultConfigError("VAULT_ACTIVE_KEY must name one of several VAULT_KEYS versions")
        active = next(iter(ring))
    if active not in ring:
        raise VaultConfigError(f"VAULT_ACTIVE_KEY {active!r} is not one of the VAULT_KEYS versions")
    return KeyRing(keys=ring, active=active)


def pack(version: str, nonce: bytes, sealed: bytes) -> str:
    """The stored text of a sealed value."""
    return f"{version}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unpack(envelope: str) -> tuple[str, bytes, bytes]:
    """(version, nonce, ciphertext+tag) of a stored value; INTERNAL VAULT_ENVELOPE_INVALID when malformed."""
    version, sep, encoded = envelope.partition(":")
    try:
        raw = base64.urlsafe_b64decode(encoded)
    except (binascii.Error, ValueError):
        raw = b""
    if not sep or not _VERSION.match(version) or len(raw) <= NONCE_BYTES:
        raise errors.Internal("a stored secret is not a vault envelope", reason="VAULT_ENVELOPE_INVALID")
    return version, raw[:NONCE_BYTES], raw[NONCE_BYTES:]


def version_of(envelope: str) -> str:
    """The key version a stored value is sealed under."""
    return envelope.partition(":")[0]
