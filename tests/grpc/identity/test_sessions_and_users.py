"""Sessions and users over the real service: expiry, listing, revocation, ownership, account deletion."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import descriptor_pool, field_mask_pb2, message_factory

from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import user_pb2
from servicekit import auth, status
from tests.grpc.identity.conftest import Identity
from tests.grpc.identity.helpers import (
    DRIVE_SYNC,
    GATEWAY,
    as_,
    define_user,
    refused,
    sign_in,
    sql,
    user_principal,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")


async def new_session(identity: Identity, oidc_provider: str, sub: str) -> pb.CompleteGoogleSignInResponse:
    await define_user(oidc_provider, sub)
    return await sign_in(identity.stub, sub)


def session_of(done: pb.CompleteGoogleSignInResponse) -> list[tuple[str, str]]:
    return as_(user_principal(done.user.name, cred=done.session.name))


async def authenticate(identity: Identity, token: str) -> pb.AuthenticateSessionResponse:
    return await identity.stub.AuthenticateSession(
        pb.AuthenticateSessionRequest(session_token=token), metadata=as_(GATEWAY)
    )


async def test_sessions_expire_when_idle_and_slide_forward_with_use(
    identity: Identity, oidc_provider: str
) -> None:
    done = await new_session(identity, oidc_provider, "idler")
    first = await authenticate(identity, done.session_token)
    # Time passes: the last use is moved two minutes back, so the next use records itself and slides.
    await sql(
        identity.database_url,
        "update identity.sessions set last_used_time = last_used_time - interval '2 minutes',"
        " expire_time = expire_time - interval '2 minutes'",
    )
    slid = await authenticate(identity, done.session_token)
    assert slid.session.expire_time.ToDatetime() > first.session.expire_time.ToDatetime()
    await sql(identity.database_url, "update identity.sessions set expire_time = now() - interval '1 second'")
    expired = await refused(authenticate(identity, done.session_token))
    assert (expired.code, expired.reason) == ("UNAUTHENTICATED", "SESSION_EXPIRED")
    await sql(
        identity.database_url,
        "update identity.sessions set expire_time = now() + interval '1 day',"
        " absolute_expire_time = now() - interval '1 second'",
    )
    capped = await refused(authenticate(identity, done.session_token))
    assert capped.reason == "SESSION_EXPIRED", "the absolute expiry holds whatever the sliding one says"
    for token in ("x" * 43, "short", ""):
        unknown = await refused(authenticate(identity, token))
        assert (unknown.code, unknown.reason) == ("UNAUTHENTICATED", "SESSION_INVALID")


async def test_sessions_are_listed_and_revoked_by_their_owner_only(
    identity: Identity, oidc_provider: str
) -> None:
    laptop = await new_session(identity, oidc_provider, "owner")
    phone = await sign_in(identity.stub, "owner")
    other = await new_session(identity, oidc_provider, "stranger")
    listed = await identity.stub.ListSessions(pb.ListSessionsRequest(), metadata=session_of(laptop))
    assert [s.name for s in listed.sessions] == [phone.session.name, laptop.session.name]
    assert [s.current for s in listed.sessions] == [False, True]

    foreign = await refused(
        identity.stub.RevokeSession(
            pb.RevokeSessionRequest(name=laptop.session.name), metadata=session_of(other)
        )
    )
    assert (foreign.code, foreign.reason) == ("NOT_FOUND", "SESSION_NOT_FOUND")
    await authenticate(identity, laptop.session_token)

    await identity.stub.RevokeSession(
        pb.RevokeSessionRequest(name=phone.session.name), metadata=session_of(laptop)
    )
    await identity.stub.RevokeSession(
        pb.RevokeSessionRequest(name=phone.session.name), metadata=session_of(laptop)
    )
    gone = await refused(authenticate(identity, phone.session_token))
    assert gone.reason == "SESSION_INVALID"
    third = await sign_in(identity.stub, "owner")
    kept = await identity.stub.RevokeAllSessions(
        pb.RevokeAllSessionsRequest(keep_current=True), metadata=session_of(laptop)
    )
    assert kept.revoked_count == 1
    assert (await refused(authenticate(identity, third.session_token))).reason == "SESSION_INVALID"
    await authenticate(identity, laptop.session_token)
    everything = await identity.stub.RevokeAllSessions(
        pb.RevokeAllSessionsRequest(), metadata=session_of(laptop)
    )
    assert everything.revoked_count == 1
    assert (await refused(authenticate(identity, laptop.session_token))).reason == "SESSION_INVALID"
    await authenticate(identity, other.session_token)


async def test_a_user_reads_and_renames_only_their_own_record(identity: Identity, oidc_provider: str) -> None:
    ada = await new_session(identity, oidc_provider, "ada")
    bob = await new_session(identity, oidc_provider, "bob")
    hidden = await refused(
        identity.stub.GetUser(pb.GetUserRequest(name=ada.user.name), metadata=session_of(bob))
    )
    assert (hidden.code, hidden.reason) == ("NOT_FOUND", "USER_NOT_FOUND")
    seen = await identity.stub.GetUser(pb.GetUserRequest(name=ada.user.name), metadata=as_(DRIVE_SYNC))
    assert seen.user.email == "ada@example.com"

    renamed = await identity.stub.UpdateUser(
        pb.UpdateUserRequest(user=user_pb2.User(name="users/me", display_name="  Ada L.  ")),
        metadata=session_of(ada),
    )
    assert renamed.user.display_name == "Ada L."
    for request, field in (
        (pb.UpdateUserRequest(user=user_pb2.User(name="users/me", display_name="")), "user.display_name"),
        (
            pb.UpdateUserRequest(user=user_pb2.User(name="users/me", display_name="x" * 101)),
            "user.display_name",
        ),
        (
            pb.UpdateUserRequest(
                user=user_pb2.User(name="users/me", email="evil@example.com"),
                update_mask=field_mask_pb2.FieldMask(paths=["email"]),
            ),
            "update_mask",
        ),
    ):
        error = await refused(identity.stub.UpdateUser(request, metadata=session_of(ada)))
        assert (error.code, error.reason, error.violations[0].field) == (
            "INVALID_ARGUMENT",
            "FIELD_INVALID",
            field,
        )
    foreign = await refused(
        identity.stub.UpdateUser(
            pb.UpdateUserRequest(user=user_pb2.User(name=ada.user.name, display_name="Mallory")),
            metadata=session_of(bob),
        )
    )
    assert foreign.code == "NOT_FOUND"


async def test_deleting_an_account_revokes_everything_at_once_and_retries_answer_the_same(
    identity: Identity, oidc_provider: str
) -> None:
    done = await new_session(identity, oidc_provider, "leaver")
    me = session_of(done)
    key = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=me
    )
    api_key_caller = as_(
        user_principal(done.user.name, auth.KIND_API_KEY, frozenset({"jobs:read"}), key.api_key.name)
    )
    request = pb.DeleteUserRequest(name="users/me", request_id=str(uuid.uuid4()))
    needs_session = await refused(identity.stub.DeleteUser(request, metadata=api_key_caller))
    assert (needs_session.code, needs_session.reason) == ("PERMISSION_DENIED", "SESSION_REQUIRED")
    missing_id = await refused(identity.stub.DeleteUser(pb.DeleteUserRequest(name="users/me"), metadata=me))
    assert missing_id.violations[0].field == "request_id"

    deleted = await identity.stub.DeleteUser(request, metadata=me)
    assert (deleted.revoked_api_key_count, deleted.revoked_session_count, deleted.revoked_grant_count) == (
        1,
        1,
        0,
    )
    assert await identity.stub.DeleteUser(request, metadata=me) == deleted
    assert (await refused(authenticate(identity, done.session_token))).code == "UNAUTHENTICATED"
    revoked = await refused(
        identity.stub.AuthenticateApiKey(pb.AuthenticateApiKeyRequest(key=key.key), metadata=as_(GATEWAY))
    )
    assert revoked.code == "UNAUTHENTICATED"
    assert (
        await refused(identity.stub.GetUser(pb.GetUserRequest(name=done.user.name), metadata=as_(GATEWAY)))
    ).code == ("NOT_FOUND")
    (row,) = await sql(
        identity.database_url, "select email, google_subject, display_name from identity.users"
    )
    assert dict(row) == {"email": "", "google_subject": None, "display_name": ""}, "personal data is erased"
    again = await sign_in(identity.stub, "leaver")
    assert again.new_user, "signing in again after deletion starts a new account"


async def test_every_rpc_refuses_a_call_without_a_principal_cleanly(identity: Identity) -> None:
    service = descriptor_pool.Default().FindServiceByName("comfyapi.identity.v1.IdentityService")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{identity.server.port}")
    try:
        for method in service.methods:
            request = message_factory.GetMessageClass(method.input_type)()
            rpc = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=type(request).SerializeToString,
                response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rpc(request, timeout=10)
            error = status.from_rpc_error(raised.value)
            assert (error.code, error.reason) == ("UNAUTHENTICATED", "PRINCIPAL_MISSING"), method.name
    finally:
        await channel.close()
