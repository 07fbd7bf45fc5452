"""The token vault over the real service, refreshing against a local token endpoint written for these tests.

The token endpoint is a small aiohttp app on loopback that answers like Google's
(`POST /token` with grant_type=refresh_token; `invalid_grant` for a dead refresh token; `POST /revoke`), and
records what it was sent; code exchanges of sign-in pass through to the OIDC provider stand-in, since Google
has one token endpoint for both. Google itself cannot be reached from tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from google.protobuf import duration_pb2

from comfyapi.identity.v1 import grant_pb2
from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import identity_service_pb2_grpc as pb_grpc
from servicekit import auth
from tests.grpc.identity.conftest import google_settings
from tests.grpc.identity.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    DRIVE_SYNC,
    as_,
    define_user,
    identity_stub,
    refused,
    run_command,
    serve_app,
    sign_in,
    sql,
    user_principal,
)
from tests.support.servers import running_service

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")
DRIVE = "https://www.googleapis.com/auth/drive"
DRIVE_GRANT = grant_pb2.GRANT_PROVIDER_GOOGLE_DRIVE


@dataclass
class TokenEndpoint:
    """Google's token and revocation endpoints, as far as the vault uses them."""

    live: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    expires_in: int = 3600
    issued: int = 0
    base: str = ""
    upstream: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/revoke", self.revoke)
        return app

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("grant_type") == "authorization_code":
            async with httpx.AsyncClient() as http:
                upstream = await http.post(f"{self.upstream}/oauth2/token", data=form)
            return web.Response(
                status=upstream.status_code, body=upstream.content, content_type="application/json"
            )
        self.requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.live:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                status=400,
            )
        self.issued += 1
        return web.json_response(
            {
                "access_token": f"ya29.test-{self.issued}",
                "expires_in": self.expires_in,
                "scope": DRIVE,
                "token_type": "Bearer",
            }
        )

    async def revoke(self, request: web.Request) -> web.Response:
        token = str((await request.post()).get("token", ""))
        self.revoked.append(token)
        self.live.discard(token)
        return web.Response(status=200)


@dataclass
class Vault:
    """An identity service whose vault refreshes against the local token endpoint, and one signed-in user."""

    stub: pb_grpc.IdentityServiceStub
    endpoint: TokenEndpoint
    database_url: str
    user: str
    session: list[tuple[str, str]]


@pytest.fixture
async def token_endpoint(oidc_provider: str) -> AsyncIterator[TokenEndpoint]:
    endpoint = TokenEndpoint(upstream=oidc_provider)
    async with serve_app(endpoint.app()) as base:
        endpoint.base = base
        yield endpoint


def vault_settings(
    oidc_provider: str, endpoint: TokenEndpoint, keys: str, active: str = ""
) -> dict[str, str]:
    return google_settings(
        oidc_provider,
        google_token_uri=f"{endpoint.base}/token",
        google_revocation_uri=f"{endpoint.base}/revoke",
        vault_keys=keys,
        vault_active_key=active,
        outbox_interval_seconds="0.1",
    )


@pytest.fixture
async def vault(
    database_url: str,
    clean_redis: str,
    oidc_provider: str,
    vault_keys: tuple[str, str],
    token_endpoint: TokenEndpoint,
) -> AsyncIterator[Vault]:
    settings = vault_settings(oidc_provider, token_endpoint, vault_keys[0])
    async with (
        running_service("identity", database_url, clean_redis, **settings) as server,
        identity_stub(server.port) as stub,
    ):
        sub = f"creator-{uuid.uuid4().hex[:6]}"
        await define_user(oidc_provider, sub)
        done = await sign_in(stub, sub)
        yield Vault(
            stub,
            token_endpoint,
            database_url,
            done.user.name,
            as_(user_principal(done.user.name, cred=done.session.name)),
        )


async def store(vault: Vault, refresh_token: str, request_id: str = "") -> pb.StoreGrantResponse:
    vault.endpoint.live.add(refresh_token)
    return await vault.stub.StoreGrant(
        pb.StoreGrantRequest(
            owner=vault.user,
            provider=DRIVE_GRANT,
            refresh_token=refresh_token,
            scopes=[DRIVE],
            account_subject="g-123",
            account_email="creator@example.com",
            request_id=request_id or str(uuid.uuid4()),
        ),
        metadata=as_(DRIVE_SYNC),
    )


async def access(vault: Vault, minutes: int = 0) -> pb.GetAccessTokenResponse:
    min_ttl = duration_pb2.Duration(seconds=minutes * 60) if minutes else None
    return await vault.stub.GetAccessToken(
        pb.GetAccessTokenRequest(owner=vault.user, provider=DRIVE_GRANT, min_ttl=min_ttl),
        metadata=as_(DRIVE_SYNC),
    )


async def test_a_grant_is_sealed_at_rest_and_access_tokens_are_refreshed_then_cached(vault: Vault) -> None:
    stored = await store(vault, "1//refresh-abc")
    assert stored.grant.state == grant_pb2.GRANT_STATE_ACTIVE
    assert (stored.grant.owner, stored.grant.account_email, list(stored.grant.scopes)) == (
        vault.user,
        "creator@example.com",
        [DRIVE],
    )
    (row,) = await sql(vault.database_url, "select * from identity.grants")
    assert row["refresh_token_sealed"].startswith("v1:")
    assert "refresh-abc" not in str(dict(row))

    vault.endpoint.expires_in = 600
    first = await access(vault)
    assert first.access_token == "ya29.test-1"
    assert first.grant == stored.grant.name
    assert list(first.scopes) == [DRIVE]
    (sent,) = vault.endpoint.requests
    assert sent == {
        "grant_type": "refresh_token",
        "refresh_token": "1//refresh-abc",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert (await access(vault)).access_token == "ya29.test-1", "a token with over 5 minutes left is reused"
    assert len(vault.endpoint.requests) == 1
    assert (await access(vault, minutes=20)).access_token == "ya29.test-2", "too short for the asked min_ttl"
    (row,) = await sql(vault.database_url, "select access_token_sealed from identity.grants")
    assert row["access_token_sealed"].startswith("v1:")
    assert "ya29" not in row["access_token_sealed"]

    shown = await vault.stub.GetGrant(pb.GetGrantRequest(name=stored.grant.name), metadata=vault.session)
    assert shown.grant.HasField("last_refresh_time")
    listed = await vault.stub.ListGrants(pb.ListGrantsRequest(), metadata=vault.session)
    assert [g.name for g in listed.grants] == [stored.grant.name]
    assert "refresh-abc" not in str(listed)


async def test_a_grant_the_provider_refuses_is_marked_revoked_and_reported(vault: Vault) -> None:
    stored = await store(vault, "1//soon-dead")
    vault.endpoint.live.clear()
    for _ in range(2):
        error = await refused(access(vault))
        assert (error.code, error.reason) == ("FAILED_PRECONDITION", "GRANT_REVOKED")
        assert error.metadata["grant"] == stored.grant.name
    shown = await vault.stub.GetGrant(pb.GetGrantRequest(name=stored.grant.name), metadata=as_(DRIVE_SYNC))
    assert shown.grant.state == grant_pb2.GRANT_STATE_REVOKED
    assert shown.grant.revoke_reason == grant_pb2.GRANT_REVOKE_REASON_PROVIDER_REVOKED
    assert shown.grant.HasField("revoke_time")
    (row,) = await sql(vault.database_url, "select refresh_token_sealed from identity.grants")
    assert row["refresh_token_sealed"] is None, "a dead refresh token is not kept"
    assert len(vault.endpoint.requests) == 1, "a grant known to be revoked is not refreshed again"


async def test_storing_is_idempotent_and_a_new_grant_replaces_the_old_one(vault: Vault) -> None:
    request_id = str(uuid.uuid4())
    first = await store(vault, "1//first", request_id)
    assert (await store(vault, "1//first", request_id)).grant.name == first.grant.name
    second = await store(vault, "1//second")
    assert second.grant.name != first.grant.name
    old = await vault.stub.GetGrant(pb.GetGrantRequest(name=first.grant.name), metadata=vault.session)
    assert (old.grant.state, old.grant.revoke_reason) == (
        grant_pb2.GRANT_STATE_REVOKED,
        grant_pb2.GRANT_REVOKE_REASON_REPLACED,
    )
    assert (await access(vault)).grant == second.grant.name
    assert vault.endpoint.requests[-1]["refresh_token"] == "1//second"

    def request(**changes: object) -> pb.StoreGrantRequest:
        fields: dict[str, object] = {
            "owner": vault.user,
            "provider": DRIVE_GRANT,
            "refresh_token": "1//x",
            "scopes": [DRIVE],
            "request_id": str(uuid.uuid4()),
            **changes,
        }
        return pb.StoreGrantRequest(**fields)

    for changes, code, reason in (
        ({"refresh_token": ""}, "INVALID_ARGUMENT", "REFRESH_TOKEN_MISSING"),
        ({"provider": grant_pb2.GRANT_PROVIDER_UNSPECIFIED}, "INVALID_ARGUMENT", "FIELD_INVALID"),
        ({"request_id": "again"}, "INVALID_ARGUMENT", "FIELD_INVALID"),
        ({"scopes": []}, "INVALID_ARGUMENT", "FIELD_INVALID"),
        ({"owner": f"users/{uuid.uuid4()}"}, "NOT_FOUND", "USER_NOT_FOUND"),
    ):
        error = await refused(vault.stub.StoreGrant(request(**changes), metadata=as_(DRIVE_SYNC)))
        assert (error.code, error.reason) == (code, reason), changes
    by_user = await refused(vault.stub.StoreGrant(request(), metadata=vault.session))
    assert by_user.reason == "SERVICE_ONLY"


async def test_revoking_a_grant_tells_the_provider_through_the_outbox(
    vault: Vault, oidc_provider: str
) -> None:
    stored = await store(vault, "1//to-revoke")
    await define_user(oidc_provider, "nosy")
    nosy = await sign_in(vault.stub, "nosy")
    hidden = await refused(
        vault.stub.RevokeGrant(
            pb.RevokeGrantRequest(name=stored.grant.name, request_id=str(uuid.uuid4())),
            metadata=as_(user_principal(nosy.user.name, cred=nosy.session.name)),
        )
    )
    assert (hidden.code, hidden.reason) == ("NOT_FOUND", "GRANT_NOT_FOUND")
    unscoped = as_(user_principal(vault.user, auth.KIND_API_KEY, frozenset({"jobs:read"}), "apiKeys/k"))
    missing = await refused(vault.stub.ListGrants(pb.ListGrantsRequest(), metadata=unscoped))
    assert (missing.reason, missing.metadata["scope"]) == ("SCOPE_MISSING", "drive:manage")

    request = pb.RevokeGrantRequest(name=stored.grant.name, request_id=str(uuid.uuid4()))
    revoked = await vault.stub.RevokeGrant(request, metadata=vault.session)
    assert (revoked.grant.state, revoked.grant.revoke_reason) == (
        grant_pb2.GRANT_STATE_REVOKED,
        grant_pb2.GRANT_REVOKE_REASON_USER_REQUESTED,
    )
    assert (await vault.stub.RevokeGrant(request, metadata=vault.session)).grant == revoked.grant
    assert (await refused(access(vault))).reason == "GRANT_REVOKED"
    for _ in range(100):
        if vault.endpoint.revoked:
            break
        await asyncio.sleep(0.05)
    assert vault.endpoint.revoked == ["1//to-revoke"]
    for _ in range(100):
        (row,) = await sql(vault.database_url, "select refresh_token_sealed from identity.grants")
        if row["refresh_token_sealed"] is None:
            break
        await asyncio.sleep(0.05)
    assert row["refresh_token_sealed"] is None
    (message,) = await sql(vault.database_url, "select kind, done_time from identity.outbox")
    assert message["kind"] == "grant.revoke_at_provider"
    assert message["done_time"] is not None


async def test_without_vault_keys_the_vault_says_it_is_not_configured(
    database_url: str, clean_redis: str, oidc_provider: str
) -> None:
    async with (
        running_service("identity", database_url, clean_redis, **google_settings(oidc_provider)) as server,
        identity_stub(server.port) as stub,
    ):
        owner = f"users/{uuid.uuid4()}"
        for call in (
            stub.StoreGrant(
                pb.StoreGrantRequest(
                    owner=owner,
                    provider=DRIVE_GRANT,
                    refresh_token="r",
                    scopes=[DRIVE],
                    request_id=str(uuid.uuid4()),
                ),
                metadata=as_(DRIVE_SYNC),
            ),
            stub.GetAccessToken(
                pb.GetAccessTokenRequest(owner=owner, provider=DRIVE_GRANT), metadata=as_(DRIVE_SYNC)
            ),
        ):
            error = await refused(call)
            assert (error.code, error.reason) == ("FAILED_PRECONDITION", "VAULT_NOT_CONFIGURED")
            assert "VAULT_KEYS" in error.message


async def test_rotation_reseals_under_the_active_key_and_old_keys_open_until_then(
    vault: Vault, oidc_provider: str, clean_redis: str, vault_keys: tuple[str, str]
) -> None:
    v1, v2 = vault_keys
    vault.endpoint.expires_in = 600
    await store(vault, "1//rotate-me")
    await access(vault)
    both = vault_settings(oidc_provider, vault.endpoint, f"{v1},{v2}", "v2")
    async with (
        running_service("identity", vault.database_url, clean_redis, **both) as server,
        identity_stub(server.port) as stub,
    ):
        before = await stub.GetAccessToken(
            pb.GetAccessTokenRequest(owner=vault.user, provider=DRIVE_GRANT), metadata=as_(DRIVE_SYNC)
        )
        assert before.access_token == "ya29.test-1", "the v1-sealed cached token still opens"
    (row,) = await sql(
        vault.database_url, "select refresh_token_sealed, access_token_sealed from identity.grants"
    )
    assert row["refresh_token_sealed"].startswith("v1:")

    code, _, err = await run_command(
        vault.database_url, clean_redis, "rotate-vault-keys", vault_keys=f"{v1},{v2}", vault_active_key="v2"
    )
    assert code == 0, err
    assert "re-sealed 1 under key v2" in err
    (row,) = await sql(
        vault.database_url, "select refresh_token_sealed, access_token_sealed from identity.grants"
    )
    assert row["refresh_token_sealed"].startswith("v2:")
    assert row["access_token_sealed"].startswith("v2:")
    assert v1.split(":")[1] not in err + row["refresh_token_sealed"]

    only_v2 = vault_settings(oidc_provider, vault.endpoint, v2)
    async with (
        running_service("identity", vault.database_url, clean_redis, **only_v2) as server,
        identity_stub(server.port) as stub,
    ):
        after = await stub.GetAccessToken(
            pb.GetAccessTokenRequest(
                owner=vault.user, provider=DRIVE_GRANT, min_ttl=duration_pb2.Duration(seconds=1800)
            ),
            metadata=as_(DRIVE_SYNC),
        )
        assert after.access_token == "ya29.test-2"
        assert vault.endpoint.requests[-1]["refresh_token"] == "1//rotate-me", (
            "the re-sealed refresh token opens"
        )
    lost = await refused(access(vault, minutes=30))
    assert (lost.code, lost.reason) == ("INTERNAL", "VAULT_KEY_UNKNOWN"), "v1 alone cannot open v2 envelopes"
