"""Expiry rules of API keys and sessions, and page tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity.domain import paging
from identity.domain.models import ApiKey, ApiKeyState, Session, SessionPolicy, usage_is_stale
from servicekit import errors

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def key(**changes: object) -> ApiKey:
    fields: dict[str, object] = {
        "id": "k",
        "user_id": "u",
        "display_name": "ci",
        "prefix": "cmfy_AAAAAAAA",
        "scopes": frozenset({"jobs:read"}),
        "create_time": NOW - timedelta(days=1),
        "update_time": NOW - timedelta(days=1),
        **changes,
    }
    return ApiKey(**fields)  # type: ignore[arg-type]


def test_a_key_expires_at_its_expire_time_and_revocation_wins() -> None:
    assert key().state(NOW) is ApiKeyState.ACTIVE
    assert key(expire_time=NOW + timedelta(seconds=1)).state(NOW) is ApiKeyState.ACTIVE
    assert key(expire_time=NOW).state(NOW) is ApiKeyState.EXPIRED
    assert key(expire_time=NOW, revoke_time=NOW - timedelta(hours=1)).state(NOW) is ApiKeyState.REVOKED


def test_last_used_is_written_at_most_once_a_minute() -> None:
    minute = timedelta(minutes=1)
    assert usage_is_stale(None, NOW, minute)
    assert not usage_is_stale(NOW - timedelta(seconds=59), NOW, minute)
    assert usage_is_stale(NOW - minute, NOW, minute)


def test_sessions_slide_with_use_but_never_past_their_absolute_expiry() -> None:
    policy = SessionPolicy(idle=timedelta(days=7), absolute=timedelta(days=30))
    expire, absolute = policy.first_expiry(NOW)
    assert (expire, absolute) == (NOW + timedelta(days=7), NOW + timedelta(days=30))
    session = Session("s", "u", "ua", "ip", NOW, NOW, NOW, expire, absolute)
    assert not session.expired(NOW + timedelta(days=6))
    assert session.expired(NOW + timedelta(days=7))
    assert session.extended(NOW + timedelta(days=6), policy.idle) == NOW + timedelta(days=13)
    assert session.extended(NOW + timedelta(days=29), policy.idle) == absolute
    late = Session("s", "u", "ua", "ip", NOW, NOW, NOW, absolute + timedelta(days=1), absolute)
    assert late.expired(absolute), "the absolute expiry holds even if the sliding one is later"


def test_page_tokens_round_trip_and_garbage_is_refused_naming_the_field() -> None:
    cursor = paging.Cursor(NOW, "7b0c6f3e-0000-4000-8000-000000000000")
    assert paging.decode(paging.encode(cursor)) == cursor
    assert paging.decode("") is None
    forged = paging.encode(paging.Cursor(NOW, "x' or 1=1"))
    for bad in ("not-a-token", forged):
        with pytest.raises(errors.InvalidArgument) as raised:
            paging.decode(bad)
        assert raised.value.reason == "PAGE_TOKEN_INVALID"
        assert raised.value.violations[0].field == "page_token"
    assert paging.page_size(0) == 50
    assert paging.page_size(1000) == 100
