"""Conversion between identity's domain values and their protos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from comfyapi.identity.v1 import api_key_pb2, grant_pb2, principal_pb2, session_pb2, user_pb2
from identity.domain.models import (
    ApiKey,
    ApiKeyState,
    Grant,
    GrantState,
    Provider,
    RevokeReason,
    Session,
    User,
)
from servicekit import auth
from servicekit.context import Principal

_KEY_STATES = {
    ApiKeyState.ACTIVE: api_key_pb2.API_KEY_STATE_ACTIVE,
    ApiKeyState.REVOKED: api_key_pb2.API_KEY_STATE_REVOKED,
    ApiKeyState.EXPIRED: api_key_pb2.API_KEY_STATE_EXPIRED,
}
_GRANT_STATES = {
    GrantState.ACTIVE: grant_pb2.GRANT_STATE_ACTIVE,
    GrantState.REVOKED: grant_pb2.GRANT_STATE_REVOKED,
}
_REASONS = {
    RevokeReason.USER_REQUESTED: grant_pb2.GRANT_REVOKE_REASON_USER_REQUESTED,
    RevokeReason.PROVIDER_REVOKED: grant_pb2.GRANT_REVOKE_REASON_PROVIDER_REVOKED,
    RevokeReason.ACCOUNT_DELETED: grant_pb2.GRANT_REVOKE_REASON_ACCOUNT_DELETED,
    RevokeReason.REPLACED: grant_pb2.GRANT_REVOKE_REASON_REPLACED,
}
_PROVIDERS = {grant_pb2.GRANT_PROVIDER_GOOGLE_DRIVE: Provider.GOOGLE_DRIVE}
_KINDS = {
    auth.KIND_API_KEY: principal_pb2.PRINCIPAL_KIND_API_KEY,
    auth.KIND_SESSION: principal_pb2.PRINCIPAL_KIND_SESSION,
    auth.KIND_SERVICE: principal_pb2.PRINCIPAL_KIND_SERVICE,
}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf timestamp, or None (field left unset)."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def from_timestamp(value: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """An aware datetime from a timestamp field, None when the field is unset."""
    return value.ToDatetime(tzinfo=UTC) if present else None


def duration(value: timedelta) -> duration_pb2.Duration:
    """A protobuf duration."""
    result = duration_pb2.Duration()
    result.FromTimedelta(value)
    return result


def user(value: User) -> user_pb2.User:
    """A user as clients see it."""
    return user_pb2.User(
        name=f"users/{value.id}",
        email=value.email,
        display_name=value.display_name,
        picture_uri=value.picture_uri,
        google_subject=value.google_subject or "",
        plan_id=value.plan_id,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        last_sign_in_time=timestamp(value.last_sign_in_time),
    )


def api_key(value: ApiKey, now: datetime) -> api_key_pb2.ApiKey:
    """An API key without its secret."""
    return api_key_pb2.ApiKey(
        name=f"apiKeys/{value.id}",
        user=f"users/{value.user_id}",
        display_name=value.display_name,
        prefix=value.prefix,
        scopes=sorted(value.scopes),
        state=_KEY_STATES[value.state(now)],
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        last_used_time=timestamp(value.last_used_time),
        expire_time=timestamp(value.expire_time),
        revoke_time=timestamp(value.revoke_time),
    )


def session(value: Session, current: str = "") -> session_pb2.Session:
    """A session; `current` is the resource name of the session the caller uses."""
    name = f"sessions/{value.id}"
    return session_pb2.Session(
        name=name,
        user=f"users/{value.user_id}",
        user_agent=value.user_agent,
        client_ip=value.client_ip,
        current=bool(current) and name == current,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        last_used_time=timestamp(value.last_used_time),
        expire_time=timestamp(min(value.expire_time, value.absolute_expire_time)),
    )


def grant(value: Grant) -> grant_pb2.Grant:
    """A grant's metadata, never its tokens."""
    return grant_pb2.Grant(
        name=f"grants/{value.id}",
        owner=f"users/{value.owner_id}",
        provider=grant_pb2.GRANT_PROVIDER_GOOGLE_DRIVE,
        scopes=list(value.scopes),
        account_subject=value.account_subject,
        account_email=value.account_email,
        state=_GRANT_STATES[value.state],
        revoke_reason=_REASONS[value.revoke_reason]
        if value.revoke_reason
        else grant_pb2.GRANT_REVOKE_REASON_UNSPECIFIED,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        last_refresh_time=timestamp(value.last_refresh_time),
        revoke_time=timestamp(value.revoke_time),
    )


def provider(value: int) -> Provider | None:
    """The domain provider of a proto enum value; None when unspecified or unknown."""
    return _PROVIDERS.get(grant_pb2.GrantProvider.ValueType(value))


def principal(value: Principal) -> principal_pb2.Principal:
    """The proto principal of an authenticated caller."""
    kind = _KINDS[value.kind]
    return principal_pb2.Principal(
        user=value.subject if value.kind != auth.KIND_SERVICE else "",
        kind=kind,
        scopes=sorted(value.scopes),
        plan_id=value.plan,
        api_key=value.credential_id if value.kind == auth.KIND_API_KEY else "",
        session=value.credential_id if value.kind == auth.KIND_SESSION else "",
        service=value.subject.removeprefix(auth.SERVICE_PREFIX) if value.kind == auth.KIND_SERVICE else "",
    )
