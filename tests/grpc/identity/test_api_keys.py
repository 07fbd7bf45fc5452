"""API keys over the real service: shown once, hashed at rest, scoped, listed, expired, revoked at once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2
from redis.asyncio import Redis

from comfyapi.identity.v1 import api_key_pb2, principal_pb2
from comfyapi.identity.v1 import identity_service_pb2 as pb
from identity.adapters.events import CHANNEL
from servicekit import auth
from tests.grpc.identity.conftest import Identity
from tests.grpc.identity.helpers import GATEWAY, as_, define_user, refused, sign_in, sql, user_principal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


async def signed_in(identity: Identity, oidc_provider: str, sub: str) -> tuple[str, list[tuple[str, str]]]:
    """Signs `sub` in; returns their user name and session metadata."""
    await define_user(oidc_provider, sub)
    done = await sign_in(identity.stub, sub)
    return done.user.name, as_(user_principal(done.user.name, cred=done.session.name))


async def test_a_key_is_shown_once_stored_hashed_and_authenticates_with_its_scopes(
    identity: Identity, oidc_provider: str
) -> None:
    user, me = await signed_in(identity, oidc_provider, "keyholder")
    created = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="ci pipeline", scopes=["jobs:read", "jobs:write"]), metadata=me
    )
    prefix, _, secret = created.key.rpartition("_")
    assert prefix == created.api_key.prefix
    assert created.api_key.state == api_key_pb2.API_KEY_STATE_ACTIVE
    assert created.api_key.user == user
    (row,) = await sql(identity.database_url, "select * from identity.api_keys")
    assert secret.encode() not in bytes(row["secret_hash"])
    assert secret not in json.dumps({k: str(v) for k, v in dict(row).items()})

    resolved = await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY)
    )
    assert resolved.principal == principal_pb2.Principal(
        user=user,
        kind=principal_pb2.PRINCIPAL_KIND_API_KEY,
        scopes=["jobs:read", "jobs:write"],
        plan_id="free",
        api_key=created.api_key.name,
    )
    assert resolved.cache_ttl.seconds == 30

    listed = await identity.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=me)
    (shown,) = listed.api_keys
    assert (shown.name, shown.prefix, shown.display_name) == (created.api_key.name, prefix, "ci pipeline")
    assert list(shown.scopes) == ["jobs:read", "jobs:write"]
    assert shown.HasField("create_time")
    assert shown.HasField("last_used_time"), "the authentication above was recorded"
    assert secret not in str(listed)


async def test_bad_keys_are_refused_without_saying_which_part_was_wrong(
    identity: Identity, oidc_provider: str
) -> None:
    _, me = await signed_in(identity, oidc_provider, "guesser")
    key = (
        await identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=me
        )
    ).key
    wrong_secret = key[:-1] + ("a" if key[-1] != "a" else "b")
    unknown_prefix = "cmfy_ZZZZZZZZ" + key[13:]
    for presented in (wrong_secret, unknown_prefix, "cmfy_short", "", "Bearer " + key):
        error = await refused(
            identity.stub.AuthenticateApiKey(
                pb.AuthenticateApiKeyRequest(key=presented), metadata=as_(GATEWAY)
            )
        )
        assert (error.code, error.reason) == ("UNAUTHENTICATED", "API_KEY_INVALID"), presented
        assert error.message == "the API key is not valid"
    as_user = await refused(
        identity.stub.AuthenticateApiKey(pb.AuthenticateApiKeyRequest(key=key), metadata=me)
    )
    assert (as_user.code, as_user.reason) == ("PERMISSION_DENIED", "SERVICE_ONLY")


async def test_a_revoked_key_is_refused_at_once_and_gateways_are_told(
    identity: Identity, oidc_provider: str
) -> None:
    user, me = await signed_in(identity, oidc_provider, "revoker")
    created = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="short lived", scopes=["jobs:read"]), metadata=me
    )
    listener = Redis.from_url(identity.redis_url)
    channel = listener.pubsub()
    await channel.subscribe(CHANNEL)
    await channel.get_message(timeout=1)  # the subscription confirmation
    try:
        revoked = await identity.stub.RevokeApiKey(
            pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=me
        )
        assert revoked.api_key.state == api_key_pb2.API_KEY_STATE_REVOKED
        assert revoked.api_key.HasField("revoke_time")
        error = await refused(
            identity.stub.AuthenticateApiKey(
                pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY)
            )
        )
        assert (error.code, error.reason) == ("UNAUTHENTICATED", "API_KEY_REVOKED")
        message = await channel.get_message(ignore_subscribe_messages=True, timeout=5)
    finally:
        await channel.aclose()
        await listener.aclose()
    assert message is not None
    event = json.loads(message["data"])
    assert {k: event[k] for k in ("kind", "name", "user", "prefix")} == {
        "kind": "api_key",
        "name": created.api_key.name,
        "user": user,
        "prefix": created.api_key.prefix,
    }
    again = await identity.stub.RevokeApiKey(pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=me)
    assert again.api_key.revoke_time == revoked.api_key.revoke_time, "revoking twice changes nothing"
    assert not (await identity.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=me)).api_keys
    shown = await identity.stub.ListApiKeys(pb.ListApiKeysRequest(show_inactive=True), metadata=me)
    assert [k.state for k in shown.api_keys] == [api_key_pb2.API_KEY_STATE_REVOKED]


async def test_expiry_is_checked_at_creation_and_enforced_after(
    identity: Identity, oidc_provider: str
) -> None:
    _, me = await signed_in(identity, oidc_provider, "expirer")
    past = await refused(
        identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(
                display_name="old",
                scopes=["jobs:read"],
                expire_time=stamp(datetime.now(UTC) - timedelta(minutes=1)),
            ),
            metadata=me,
        )
    )
    assert (past.code, past.reason, past.violations[0].field) == (
        "INVALID_ARGUMENT",
        "EXPIRE_TIME_IN_PAST",
        "expire_time",
    )
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="soon", scopes=["jobs:read"], expire_time=stamp(soon)),
        metadata=me,
    )
    assert created.api_key.expire_time.ToDatetime(tzinfo=UTC) == soon.replace(microsecond=soon.microsecond)
    await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY)
    )
    # Time passes: the key's expiry is moved into the past rather than waiting for it.
    await sql(identity.database_url, "update identity.api_keys set expire_time = now() - interval '1 second'")
    error = await refused(
        identity.stub.AuthenticateApiKey(pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY))
    )
    assert (error.code, error.reason) == ("UNAUTHENTICATED", "API_KEY_EXPIRED")
    shown = await identity.stub.ListApiKeys(pb.ListApiKeysRequest(show_inactive=True), metadata=me)
    assert [k.state for k in shown.api_keys] == [api_key_pb2.API_KEY_STATE_EXPIRED]


async def test_scopes_are_documented_held_by_the_creator_and_keys_manage_is_required(
    identity: Identity, oidc_provider: str
) -> None:
    user, me = await signed_in(identity, oidc_provider, "scoper")
    unknown = await refused(
        identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read", "root"]), metadata=me
        )
    )
    assert (unknown.code, unknown.reason, unknown.metadata["scopes"]) == (
        "INVALID_ARGUMENT",
        "SCOPE_UNKNOWN",
        "root",
    )
    none = await refused(identity.stub.CreateApiKey(pb.CreateApiKeyRequest(display_name="k"), metadata=me))
    assert none.violations[0].field == "scopes"
    blank = await refused(
        identity.stub.CreateApiKey(pb.CreateApiKeyRequest(scopes=["jobs:read"]), metadata=me)
    )
    assert blank.violations[0].field == "display_name"

    reader = as_(user_principal(user, auth.KIND_API_KEY, frozenset({"jobs:read"}), "apiKeys/x"))
    for call in (
        identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=reader
        ),
        identity.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=reader),
    ):
        missing = await refused(call)
        assert (missing.code, missing.reason, missing.metadata["scope"]) == (
            "PERMISSION_DENIED",
            "SCOPE_MISSING",
            "keys:manage",
        )
    manager = as_(
        user_principal(user, auth.KIND_API_KEY, frozenset({"keys:manage", "jobs:read"}), "apiKeys/y")
    )
    escalation = await refused(
        identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:write"]), metadata=manager
        )
    )
    assert (escalation.code, escalation.reason) == ("PERMISSION_DENIED", "SCOPE_NOT_HELD")
    made = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=manager
    )
    assert list(made.api_key.scopes) == ["jobs:read"]


async def test_another_users_keys_are_not_found(identity: Identity, oidc_provider: str) -> None:
    _, alice = await signed_in(identity, oidc_provider, "alice")
    _, bob = await signed_in(identity, oidc_provider, "bob")
    created = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="a", scopes=["jobs:read"]), metadata=alice
    )
    assert not (
        await identity.stub.ListApiKeys(pb.ListApiKeysRequest(show_inactive=True), metadata=bob)
    ).api_keys
    error = await refused(
        identity.stub.RevokeApiKey(pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=bob)
    )
    assert (error.code, error.reason) == ("NOT_FOUND", "API_KEY_NOT_FOUND")
    await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY)
    )
    malformed = await refused(
        identity.stub.RevokeApiKey(pb.RevokeApiKeyRequest(name="apiKeys/nope"), metadata=bob)
    )
    assert (malformed.code, malformed.violations[0].field) == ("INVALID_ARGUMENT", "name")


async def test_keys_are_listed_newest_first_a_page_at_a_time(identity: Identity, oidc_provider: str) -> None:
    _, me = await signed_in(identity, oidc_provider, "pager")
    for n in range(5):
        await identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name=f"key {n}", scopes=["jobs:read"]), metadata=me
        )
        await asyncio.sleep(0.002)
    seen: list[str] = []
    token = ""
    while True:
        page = await identity.stub.ListApiKeys(
            pb.ListApiKeysRequest(page_size=2, page_token=token), metadata=me
        )
        assert len(page.api_keys) <= 2
        seen += [k.display_name for k in page.api_keys]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"key {n}" for n in reversed(range(5))]
    bad = await refused(identity.stub.ListApiKeys(pb.ListApiKeysRequest(page_token="garbage"), metadata=me))
    assert bad.reason == "PAGE_TOKEN_INVALID"


async def test_a_principal_carries_the_plan_billing_recorded_last(
    identity: Identity, oidc_provider: str
) -> None:
    user, me = await signed_in(identity, oidc_provider, "planner")
    key = (
        await identity.stub.CreateApiKey(
            pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=me
        )
    ).key
    billing = as_(auth.service_principal("billing"))
    await identity.stub.SetUserPlan(
        pb.SetUserPlanRequest(owner=user, plan_id="pro", revision=2), metadata=billing
    )
    stale = await identity.stub.SetUserPlan(
        pb.SetUserPlanRequest(owner=user, plan_id="free", revision=1), metadata=billing
    )
    assert stale.user.plan_id == "pro", "an older revision arriving late is ignored"
    resolved = await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=key), metadata=as_(GATEWAY)
    )
    assert resolved.principal.plan_id == "pro"
    by_user = await refused(
        identity.stub.SetUserPlan(pb.SetUserPlanRequest(owner=user, plan_id="pro", revision=3), metadata=me)
    )
    assert by_user.reason == "SERVICE_ONLY"
    invalid = await refused(
        identity.stub.SetUserPlan(pb.SetUserPlanRequest(owner=user, plan_id=""), metadata=billing)
    )
    assert {v.field for v in invalid.violations} == {"plan_id", "revision"}
