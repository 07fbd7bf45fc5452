"""AES-256-GCM sealing of webhook signing secrets under the versioned key ring of the settings.

A sealed value is `{key version}:{base64url(nonce || ciphertext+tag)}`, with a fresh 96-bit nonce each time
and the storage location bound as associated data, so a value copied to another account's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobs.domain.webhook_secrets import KeyRing
from servicekit import errors

NONCE_BYTES = 12


def _corrupt() -> errors.Internal:
    return errors.Internal(
        "a stored webhook secret failed its integrity check", reason="WEBHOOK_SECRET_CORRUPT"
    )


class AesGcmSecretCipher:
    """Seals and opens webhook secrets; the key material never leaves this object."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def seal(self, plaintext: str, binding: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._ring.key(self._ring.active)).encrypt(
            nonce, plaintext.encode(), binding.encode()
        )
        return f"{self._ring.active}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, binding: str) -> str:
        version, sep, encoded = sealed.partition(":")
        try:
            raw = base64.urlsafe_b64decode(encoded)
        except (binascii.Error, ValueError):
            raw = b""
        if not sep or len(raw) <= NONCE_BYTES:
            raise _corrupt()
        try:
            plaintext = AESGCM(self._ring.key(version)).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], binding.encode()
            )
        except InvalidTag:
            raise _corrupt() from None
        return plaintext.decode()
