"""The shapes of the secrets identity hands out: API keys, session tokens, CSRF tokens, OAuth state.

An API key is `cmfy_` + 8 base62 characters (the public prefix, the lookup handle) + `_` + 43 base62
characters (the secret, 256 bits). Only the SHA-256 of the secret is stored: the secret is uniformly random
and long, so a slow password hash would add nothing. Session tokens are 43 base64url characters
(256 bits), stored the same way. Comparisons of stored hashes run in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_PREFIX = "cmfy_"
PREFIX_RANDOM_LENGTH = 8
SECRET_LENGTH = 43
_KEY_PATTERN = re.compile(
    rf"^({KEY_PREFIX}[0-9A-Za-z]{{{PREFIX_RANDOM_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$"
)
_SESSION_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Hashed when a key's prefix is unknown, so an unknown and a known prefix cost the same work.
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


def _base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def digest(secret: str) -> bytes:
    """The SHA-256 of a secret, as stored."""
    return hashlib.sha256(secret.encode()).digest()


def matches(secret: str, stored: bytes | None) -> bool:
    """Compares a presented secret with a stored hash in constant time; None (no record) never matches."""
    return hmac.compare_digest(digest(secret), stored if stored is not None else _DUMMY_HASH) and (
        stored is not None
    )


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: the full key is shown once; only prefix and hash are stored."""

    prefix: str
    secret: str

    @property
    def full(self) -> str:
        """The key as the client presents it, `{prefix}_{secret}`."""
        return f"{self.prefix}_{self.secret}"

    @property
    def secret_hash(self) -> bytes:
        """What is stored instead of the secret."""
        return digest(self.secret)


def generate_api_key() -> NewApiKey:
    """A new random API key."""
    return NewApiKey(prefix=KEY_PREFIX + _base62(PREFIX_RANDOM_LENGTH), secret=_base62(SECRET_LENGTH))


def parse_api_key(key: str) -> tuple[str, str] | None:
    """Splits a presented key into (prefix, secret), or None when it does not have the documented shape."""
    found = _KEY_PATTERN.match(key)
    return (found.group(1), found.group(2)) if found else None


def generate_session_token() -> str:
    """A new session token, 43 base64url characters (256 bits)."""
    return secrets.token_urlsafe(32)


def is_session_token(token: str) -> bool:
    """Tells whether a presented session token has the documented shape (not whether it is valid)."""
    return bool(_SESSION_TOKEN_PATTERN.match(token))


def generate_csrf_token() -> str:
    """A new anti-CSRF token bound to one session."""
    return secrets.token_urlsafe(32)


def generate_oauth_value() -> str:
    """A random `state`, `nonce` or PKCE code verifier (43 base64url characters; RFC 7636: 43..128)."""
    return secrets.token_urlsafe(32)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
