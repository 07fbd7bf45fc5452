"""What the identity use cases need from the outside world, as protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    """The current time (UTC, aware)."""

    def now(self) -> datetime:
        """Now."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)


class Cipher(Protocol):
    """Seals secrets at rest (AES-GCM under versioned keys)."""

    @property
    def active_version(self) -> str:
        """The key version new values are sealed under."""
        ...

    def seal(self, plaintext: str, binding: str) -> str:
        """Seals `plaintext`, bound to where it is stored."""
        ...

    def open(self, envelope: str, binding: str) -> str:
        """Opens an envelope sealed with the same binding."""
        ...

    def needs_reseal(self, envelope: str) -> bool:
        """Tells whether an envelope uses a key other than the active one."""
        ...


class Revocations(Protocol):
    """Tells gateways to drop cached authentications."""

    async def publish(self, kind: str, name: str, user: str, when: datetime, **extra: str) -> None:
        """Announces that a credential or user must no longer be served from a cache."""
        ...


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint's answer to a refresh: a new access token, maybe a rotated refresh token."""

    access_token: str = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)


class GrantRejected(Exception):
    """The provider refused a refresh token (`invalid_grant`): the grant is dead."""


class OpenIdProvider(Protocol):
    """Google (or a stand-in) as an OpenID Connect provider and OAuth token endpoint."""

    @property
    def client_id(self) -> str:
        """The OAuth client id the platform is registered with."""
        ...

    async def authorization_endpoint(self) -> str:
        """The discovered authorization endpoint URL."""
        ...

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Exchanges an authorization code (with its PKCE verifier) for an ID token."""
        ...

    async def verify_id_token(self, id_token: str, nonce: str) -> Mapping[str, Any]:
        """The claims of an ID token whose signature, issuer, audience, expiry and nonce check out."""
        ...

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A fresh access token; raises GrantRejected on `invalid_grant`."""
        ...

    async def revoke(self, token: str) -> bool:
        """Revokes a token at the provider; False when the provider offers no revocation endpoint."""
        ...
