"""AES-256-GCM sealing of vault secrets under a versioned key ring (see identity.domain.vault).

Every value is sealed with a fresh 96-bit random nonce and bound, as associated data, to where it is stored
(for example `grants/{id}/refresh_token`), so an envelope copied to another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from identity.domain.vault import NONCE_BYTES, KeyRing, pack, unpack, version_of
from servicekit import errors


class AesGcmCipher:
    """Seals and opens secrets; the key material never leaves this object."""

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
        return pack(self._ring.active, nonce, sealed)

    def open(self, envelope: str, binding: str) -> str:
        """The plaintext of an envelope; INTERNAL VAULT_DECRYPT_FAILED when it was altered or moved."""
        version, nonce, sealed = unpack(envelope)
        try:
            plaintext = AESGCM(self._ring.key(version)).decrypt(nonce, sealed, binding.encode())
        except InvalidTag:
            raise errors.Internal(
                "a stored secret failed its integrity check", reason="VAULT_DECRYPT_FAILED"
            ) from None
        return plaintext.decode()

    def needs_reseal(self, envelope: str) -> bool:
        """Tells whether an envelope is sealed under a key other than the active one."""
        return version_of(envelope) != self._ring.active
