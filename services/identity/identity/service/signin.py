"""Google sign-in: the OpenID Connect authorization-code flow with PKCE (S256), state and nonce.

Begin keeps the state (hashed), nonce, PKCE verifier and redirect URI server side for ten minutes and
returns the authorization URL. Complete takes the state exactly once (a replay, an unknown or an expired
state is refused before the provider is asked anything), exchanges the code with the verifier, verifies the
ID token and its nonce, then creates or updates the user and opens a session in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from identity.adapters.store import Store, StoredState
from identity.domain import credentials
from identity.domain.models import User
from identity.domain.signin import check_redirect_uri, clean_return_path, profile_from_claims
from identity.service.ports import Clock, OpenIdProvider
from identity.service.sessions import OpenedSession, SessionService
from identity.service.users import UserService
from servicekit import auth, errors
from servicekit.logging import get_logger

log = get_logger("identity.signin")
SCOPES = "openid email profile"
STATE_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class SignInStart:
    """Where to send the browser, and the state bound to it."""

    authorization_uri: str = field(repr=False)
    state: str = field(repr=False)
    expire_time: datetime


@dataclass(frozen=True)
class SignedIn:
    """The outcome of a completed sign-in."""

    user: User
    opened: OpenedSession
    new_user: bool
    return_path: str


@dataclass(frozen=True)
class SignInPolicy:
    """Configuration of sign-in: redirect URI allow-list, allowed domains, state lifetime."""

    redirect_uris: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    state_lifetime: timedelta


def _state_invalid(why: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        f"the sign-in state is {why}; start signing in again",
        reason="OAUTH_STATE_INVALID",
        metadata={"why": why},
    )


def _required(value: str, field_name: str) -> str:
    if not value:
        raise errors.InvalidArgument(
            f"{field_name} is required",
            reason="FIELD_INVALID",
            violations=(errors.FieldViolation(field_name, "required"),),
        )
    return value


class SignInService:
    """Google sign-in, disabled when the provider is not configured."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        provider: OpenIdProvider | None,
        policy: SignInPolicy,
        users: UserService,
        sessions: SessionService,
    ) -> None:
        self.store = store
        self.clock = clock
        self.provider = provider
        self.policy = policy
        self.users = users
        self.sessions = sessions

    def _enabled(self) -> OpenIdProvider:
        auth.require_service()
        if self.provider is None:
            raise errors.FailedPrecondition(
                "Google sign-in is not configured: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET on the "
                "identity service",
                reason="GOOGLE_SIGN_IN_DISABLED",
            )
        return self.provider

    async def begin(self, redirect_uri: str, return_path: str) -> SignInStart:
        """Starts a sign-in and returns the provider's authorization URL."""
        provider = self._enabled()
        redirect = check_redirect_uri(_required(redirect_uri, "redirect_uri"), self.policy.redirect_uris)
        path = clean_return_path(return_path)
        endpoint = await provider.authorization_endpoint()
        state, nonce, verifier = (credentials.generate_oauth_value() for _ in range(3))
        now = self.clock.now()
        expire = now + self.policy.state_lifetime
        stored = StoredState(nonce, verifier, redirect, path, expire, None)
        async with self.store.transaction() as tx:
            await tx.purge_states(now - STATE_RETENTION)
            await tx.insert_state(credentials.digest(state), stored, now)
        query = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": credentials.pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if len(self.policy.allowed_domains) == 1:
            query["hd"] = self.policy.allowed_domains[0]
        separator = "&" if "?" in endpoint else "?"
        log.info("signin.started")
        return SignInStart(f"{endpoint}{separator}{urlencode(query)}", state, expire)

    async def _take(self, state: str) -> StoredState:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            stored = await tx.take_state(credentials.digest(state), now)
        if stored is None:
            raise _state_invalid("unknown")
        if stored.use_time is not None:
            log.warning("signin.state_replayed")
            raise _state_invalid("already used")
        if stored.expire_time <= now:
            raise _state_invalid("expired")
        return stored

    async def complete(self, code: str, state: str, user_agent: str, client_ip: str) -> SignedIn:
        """Finishes a sign-in from the callback: exchange, verify, then user and session."""
        provider = self._enabled()
        _required(code, "code")
        stored = await self._take(_required(state, "state"))
        id_token = await provider.exchange_code(code, stored.redirect_uri, stored.code_verifier)
        claims = await provider.verify_id_token(id_token, stored.nonce)
        profile = profile_from_claims(claims, self.policy.allowed_domains)
        async with self.store.transaction() as tx:
            user, created = await self.users.sign_in(tx, profile)
            opened = await self.sessions.open(tx, user.id, user_agent, client_ip)
        log.info("signin.completed", user=f"users/{user.id}", new_user=created)
        return SignedIn(user=user, opened=opened, new_user=created, return_path=stored.return_path)
