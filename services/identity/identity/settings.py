"""Settings of the identity service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class IdentitySettings(ServiceSettings):
    """Everything the identity service reads from its environment.

    Google sign-in stays disabled (FAILED_PRECONDITION GOOGLE_SIGN_IN_DISABLED) until GOOGLE_CLIENT_ID and
    GOOGLE_CLIENT_SECRET are set; the token vault stays disabled (VAULT_NOT_CONFIGURED) until VAULT_KEYS is.
    """

    service_name: str = "identity"
    grpc_port: int = 50051
    metrics_port: int = 9101
    database_url: str = secret()
    redis_url: str = secret()
    # OpenID Connect discovery starts from this issuer URL.
    google_issuer: str = "https://accounts.google.com"
    google_client_id: str = ""
    google_client_secret: str = secret("")
    # Exact callback URLs BeginGoogleSignIn accepts; empty accepts any HTTPS URL and HTTP on loopback.
    google_redirect_uris: tuple[str, ...] = ()
    # Google Workspace domains (the ID token's `hd`) allowed to sign in; empty allows every account.
    google_allowed_domains: tuple[str, ...] = ()
    # Overrides of the discovered token and revocation endpoints (for a provider that lacks one, or tests).
    google_token_uri: str = ""
    google_revocation_uri: str = ""
    google_timeout_seconds: float = 10.0
    oauth_state_seconds: int = 600
    session_idle_seconds: int = 7 * 24 * 3600
    session_absolute_seconds: int = 30 * 24 * 3600
    # How long the gateway may cache an authentication; revocations are also pushed on Redis at once.
    auth_cache_ttl_seconds: float = 30.0
    # Versioned AES-256 keys, "v1:<base64 of 32 bytes>,v2:..."; the active one seals new secrets.
    vault_keys: tuple[str, ...] = secret(())
    vault_active_key: str = ""
    outbox_interval_seconds: float = 5.0
