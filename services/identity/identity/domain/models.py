"""The identity context's records as plain values, with the rules that decide their state."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_PLAN = "free"
MAX_ACTIVE_API_KEYS = 100
MAX_DISPLAY_NAME = 100


@dataclass(frozen=True)
class User:
    """A person with an account."""

    id: str
    email: str
    display_name: str
    picture_uri: str
    google_subject: str | None
    plan_id: str
    plan_revision: int
    create_time: datetime
    update_time: datetime
    last_sign_in_time: datetime | None = None


class ApiKeyState(enum.Enum):
    """Whether a key authenticates; EXPIRED is derived from expire_time at read time."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ApiKey:
    """A scoped credential; the secret itself is never part of this value."""

    id: str
    user_id: str
    display_name: str
    prefix: str
    scopes: frozenset[str]
    create_time: datetime
    update_time: datetime
    last_used_time: datetime | None = None
    expire_time: datetime | None = None
    revoke_time: datetime | None = None

    def state(self, now: datetime) -> ApiKeyState:
        """Revocation wins over expiry; an expire_time at or before now means expired."""
        if self.revoke_time is not None:
            return ApiKeyState.REVOKED
        if self.expire_time is not None and self.expire_time <= now:
            return ApiKeyState.EXPIRED
        return ApiKeyState.ACTIVE


def usage_is_stale(last_used: datetime | None, now: datetime, every: timedelta) -> bool:
    """Tells whether a last-used time should be written again (at most once per `every`)."""
    return last_used is None or now - last_used >= every


@dataclass(frozen=True)
class Session:
    """A signed-in browser; the token is stored only as a hash, so it is not part of this value."""

    id: str
    user_id: str
    user_agent: str
    client_ip: str
    create_time: datetime
    update_time: datetime
    last_used_time: datetime
    expire_time: datetime
    absolute_expire_time: datetime
    revoke_time: datetime | None = None

    def expired(self, now: datetime) -> bool:
        """A session is refused from its expire_time on (idle) and never lives past its absolute expiry."""
        return now >= min(self.expire_time, self.absolute_expire_time)

    def extended(self, now: datetime, idle: timedelta) -> datetime:
        """The sliding expiry after a use at `now`: `idle` from now, capped at the absolute expiry."""
        return min(now + idle, self.absolute_expire_time)


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions live: `idle` without use, `absolute` at most since sign-in."""

    idle: timedelta
    absolute: timedelta

    def first_expiry(self, now: datetime) -> tuple[datetime, datetime]:
        """The (sliding, absolute) expiry of a session created at `now`."""
        absolute = now + self.absolute
        return min(now + self.idle, absolute), absolute


class GrantState(enum.Enum):
    """Whether a stored grant can mint access tokens."""

    ACTIVE = "active"
    REVOKED = "revoked"


class RevokeReason(enum.Enum):
    """Why a grant was revoked."""

    USER_REQUESTED = "user_requested"
    PROVIDER_REVOKED = "provider_revoked"
    ACCOUNT_DELETED = "account_deleted"
    REPLACED = "replaced"


class Provider(enum.Enum):
    """The third party a grant is for."""

    GOOGLE_DRIVE = "google_drive"


@dataclass(frozen=True)
class Grant:
    """An OAuth grant held in the vault; its tokens stay encrypted in storage, outside this value."""

    id: str
    owner_id: str
    provider: Provider
    scopes: tuple[str, ...]
    account_subject: str
    account_email: str
    state: GrantState
    create_time: datetime
    update_time: datetime
    revoke_reason: RevokeReason | None = None
    last_refresh_time: datetime | None = None
    revoke_time: datetime | None = None


@dataclass(frozen=True)
class AccessToken:
    """A short-lived access token minted from a grant; a secret that is never logged."""

    token: str = field(repr=False)
    expire_time: datetime
    scopes: tuple[str, ...]
    grant_id: str

    def lasts(self, now: datetime, min_ttl: timedelta) -> bool:
        """Tells whether the token remains valid for at least `min_ttl` from now."""
        return self.expire_time - now >= min_ttl


@dataclass(frozen=True)
class DeletionCounts:
    """What deleting an account revoked."""

    api_keys: int
    sessions: int
    grants: int
