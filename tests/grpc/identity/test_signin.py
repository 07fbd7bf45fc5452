"""Google sign-in through the identity service against a real OIDC provider on loopback."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from comfyapi.identity.v1 import identity_service_pb2 as pb
from comfyapi.identity.v1 import principal_pb2
from identity.domain.scopes import ALL_SCOPES
from tests.grpc.identity.conftest import Identity, google_settings
from tests.grpc.identity.helpers import (
    CALLBACK,
    CLIENT_ID,
    GATEWAY,
    as_,
    consent,
    define_user,
    identity_stub,
    refused,
    serve_app,
    sign_in,
    sql,
    user_principal,
)
from tests.support.servers import running_service

# The provider stand-in (authlib on its side) warns about its own use of a deprecated authlib hook.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")


async def session_count(database_url: str) -> int:
    return (await sql(database_url, "select count(*) from identity.sessions"))[0][0]


async def test_a_first_sign_in_creates_the_user_and_a_session_the_gateway_can_resolve(
    identity: Identity, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "ada", picture="https://lh3.googleusercontent.com/a/ada")
    given = await consent(identity.stub, "ada", return_path="/dashboard")
    done = await identity.stub.CompleteGoogleSignIn(
        pb.CompleteGoogleSignInRequest(
            code=given.code, state=given.state, user_agent="Firefox", client_ip="::1"
        ),
        metadata=as_(GATEWAY),
    )
    assert done.new_user
    assert (done.user.email, done.user.display_name, done.user.google_subject) == (
        "ada@example.com",
        "Ada",
        "ada",
    )
    assert done.user.picture_uri == "https://lh3.googleusercontent.com/a/ada"
    assert done.user.plan_id == "free"
    assert done.return_path == "/dashboard"
    assert len(done.session_token) == 43
    assert done.csrf_token
    assert (done.session.user_agent, done.session.client_ip) == ("Firefox", "::1")

    resolved = await identity.stub.AuthenticateSession(
        pb.AuthenticateSessionRequest(session_token=done.session_token), metadata=as_(GATEWAY)
    )
    assert resolved.principal.kind == principal_pb2.PRINCIPAL_KIND_SESSION
    assert resolved.principal.user == done.user.name
    assert resolved.principal.session == done.session.name
    assert set(resolved.principal.scopes) == ALL_SCOPES
    assert resolved.csrf_token == done.csrf_token
    assert resolved.session.current
    assert resolved.cache_ttl.seconds == 30

    me = user_principal(done.user.name, cred=done.session.name)
    fetched = await identity.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=as_(me))
    assert fetched.user == done.user

    again = await sign_in(identity.stub, "ada")
    assert not again.new_user
    assert again.user.name == done.user.name
    assert again.session_token != done.session_token


async def test_the_authorization_url_carries_pkce_s256_and_the_token_request_the_matching_verifier(
    database_url: str, clean_redis: str, oidc_provider: str
) -> None:
    # The provider stand-in does not enforce PKCE, so the token request is captured on its way there by a
    # small recording proxy in front of the provider's real token endpoint.
    recorded: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        recorded.append({k: str(v) for k, v in form.items()})
        async with httpx.AsyncClient() as http:
            upstream = await http.post(f"{oidc_provider}/oauth2/token", data=form)
        return web.Response(
            status=upstream.status_code, body=upstream.content, content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/token", token)
    await define_user(oidc_provider, "pkce")
    async with serve_app(app) as proxy:
        settings = google_settings(oidc_provider, google_token_uri=f"{proxy}/token")
        async with (
            running_service("identity", database_url, clean_redis, **settings) as server,
            identity_stub(server.port) as stub,
        ):
            given = await consent(stub, "pkce")
            await stub.CompleteGoogleSignIn(
                pb.CompleteGoogleSignInRequest(code=given.code, state=given.state), metadata=as_(GATEWAY)
            )
    query = {k: v[0] for k, v in parse_qs(urlsplit(given.authorization_uri).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code"
    assert query["scope"] == "openid email profile"
    assert query["client_id"] == CLIENT_ID
    assert query["nonce"]
    assert query["state"] == given.state
    (sent,) = recorded
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == given.code
    assert sent["redirect_uri"] == CALLBACK
    verifier = sent["code_verifier"]
    assert 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == query["code_challenge"]


async def test_a_replayed_callback_is_refused_and_opens_no_session(
    identity: Identity, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "replay")
    given = await consent(identity.stub, "replay")
    request = pb.CompleteGoogleSignInRequest(code=given.code, state=given.state)
    await identity.stub.CompleteGoogleSignIn(request, metadata=as_(GATEWAY))
    error = await refused(identity.stub.CompleteGoogleSignIn(request, metadata=as_(GATEWAY)))
    assert (error.code, error.reason) == ("FAILED_PRECONDITION", "OAUTH_STATE_INVALID")
    assert "already used" in error.message
    assert await session_count(identity.database_url) == 1


async def test_an_unknown_or_expired_state_is_refused_before_the_code_is_used(
    identity: Identity, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "late")
    given = await consent(identity.stub, "late")
    mismatch = await refused(
        identity.stub.CompleteGoogleSignIn(
            pb.CompleteGoogleSignInRequest(code=given.code, state=given.state + "x"), metadata=as_(GATEWAY)
        )
    )
    assert (mismatch.reason, mismatch.metadata["why"]) == ("OAUTH_STATE_INVALID", "unknown")
    await sql(
        identity.database_url, "update identity.oauth_states set expire_time = now() - interval '1 second'"
    )
    expired = await refused(
        identity.stub.CompleteGoogleSignIn(
            pb.CompleteGoogleSignInRequest(code=given.code, state=given.state), metadata=as_(GATEWAY)
        )
    )
    assert (expired.code, expired.reason, expired.metadata["why"]) == (
        "FAILED_PRECONDITION",
        "OAUTH_STATE_INVALID",
        "expired",
    )
    assert await session_count(identity.database_url) == 0


async def test_a_used_or_bogus_authorization_code_is_refused_by_the_provider(
    identity: Identity, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "codes")
    first = await consent(identity.stub, "codes")
    await identity.stub.CompleteGoogleSignIn(
        pb.CompleteGoogleSignInRequest(code=first.code, state=first.state), metadata=as_(GATEWAY)
    )
    for code in (first.code, "bogus-code"):
        fresh = await consent(identity.stub, "codes")
        error = await refused(
            identity.stub.CompleteGoogleSignIn(
                pb.CompleteGoogleSignInRequest(code=code, state=fresh.state), metadata=as_(GATEWAY)
            )
        )
        assert (error.code, error.reason) == ("UNAUTHENTICATED", "AUTHORIZATION_CODE_INVALID")
    assert await session_count(identity.database_url) == 1


async def test_unverified_email_and_foreign_domains_are_refused(
    database_url: str, clean_redis: str, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "unverified", email_verified=False)
    await define_user(oidc_provider, "outsider", hd="other.com")
    await define_user(oidc_provider, "insider", hd="example.com")
    settings = google_settings(oidc_provider, google_allowed_domains="example.com")
    async with (
        running_service("identity", database_url, clean_redis, **settings) as server,
        identity_stub(server.port) as stub,
    ):
        assert parse_qs(urlsplit((await consent(stub, "insider")).authorization_uri).query)["hd"] == [
            "example.com"
        ]
        for sub, code, reason in (
            ("unverified", "UNAUTHENTICATED", "EMAIL_NOT_VERIFIED"),
            ("outsider", "PERMISSION_DENIED", "DOMAIN_NOT_ALLOWED"),
        ):
            error = await refused(sign_in(stub, sub))
            assert (error.code, error.reason) == (code, reason), sub
        assert (await sign_in(stub, "insider")).user.email == "insider@example.com"
    assert (await sql(database_url, "select count(*) from identity.users"))[0][0] == 1


class FakeGoogle:
    """A provider serving discovery, a JWKS and a token endpoint that hands out ID tokens the test forges.

    Used only for ID tokens a real provider never issues (signed by an unpublished key, for another
    audience, with a wrong nonce, expired); the stand-in provider cannot be made to produce them.
    """

    def __init__(self) -> None:
        self.published = RSAKey.generate_key(2048, parameters={"kid": "published"})
        self.base = ""
        self.next_token = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.base,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token",
                "jwks_uri": f"{self.base}/jwks",
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.published]).as_dict(private=False))

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "at", "token_type": "Bearer", "id_token": self.next_token})

    def forge(self, nonce: str, key: RSAKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.base,
            "aud": CLIENT_ID,
            "sub": "forged",
            "email": "forged@example.com",
            "email_verified": True,
            "iat": now,
            "exp": now + 600,
            "nonce": nonce,
            **claims,
        }
        signer = key or self.published
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, body, signer)


async def test_forged_id_tokens_are_refused_and_open_no_session(database_url: str, clean_redis: str) -> None:
    fake = FakeGoogle()
    intruder = RSAKey.generate_key(2048, parameters={"kid": "not-published"})
    async with serve_app(fake.app()) as base:
        fake.base = base
        async with (
            running_service("identity", database_url, clean_redis, **google_settings(base)) as server,
            identity_stub(server.port) as stub,
        ):

            async def complete(**forgery: Any) -> Any:
                begun = await stub.BeginGoogleSignIn(
                    pb.BeginGoogleSignInRequest(redirect_uri=CALLBACK), metadata=as_(GATEWAY)
                )
                nonce = parse_qs(urlsplit(begun.authorization_uri).query)["nonce"][0]
                fake.next_token = fake.forge(forgery.pop("nonce", nonce), **forgery)
                return await stub.CompleteGoogleSignIn(
                    pb.CompleteGoogleSignInRequest(code="c", state=begun.state), metadata=as_(GATEWAY)
                )

            for forgery in (
                {"key": intruder},
                {"aud": "someone-else"},
                {"nonce": "another-nonce"},
                {"iss": "https://evil.example.com"},
                {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
            ):
                error = await refused(complete(**forgery))
                assert (error.code, error.reason) == ("UNAUTHENTICATED", "ID_TOKEN_INVALID"), forgery
            assert "does not publish" in (await refused(complete(key=intruder))).message
            assert (await complete()).user.email == "forged@example.com", "the control case must pass"
    assert await session_count(database_url) == 1


async def test_sign_in_is_internal_validated_and_disabled_until_configured(
    identity: Identity, database_url: str, clean_redis: str
) -> None:
    user = user_principal("users/00000000-0000-4000-8000-000000000001")
    for metadata, reason in (([], "PRINCIPAL_MISSING"), (as_(user), "SERVICE_ONLY")):
        error = await refused(
            identity.stub.BeginGoogleSignIn(
                pb.BeginGoogleSignInRequest(redirect_uri=CALLBACK), metadata=metadata
            )
        )
        assert error.reason == reason
    bad = await refused(
        identity.stub.BeginGoogleSignIn(
            pb.BeginGoogleSignInRequest(redirect_uri="http://evil.example.com/cb"), metadata=as_(GATEWAY)
        )
    )
    assert (bad.code, bad.reason, bad.violations[0].field) == (
        "INVALID_ARGUMENT",
        "REDIRECT_URI_NOT_ALLOWED",
        "redirect_uri",
    )
    async with (
        running_service("identity", database_url, clean_redis) as server,
        identity_stub(server.port) as stub,
    ):
        for call in (
            stub.BeginGoogleSignIn(pb.BeginGoogleSignInRequest(redirect_uri=CALLBACK), metadata=as_(GATEWAY)),
            stub.CompleteGoogleSignIn(
                pb.CompleteGoogleSignInRequest(code="c", state="s"), metadata=as_(GATEWAY)
            ),
        ):
            disabled = await refused(call)
            assert (disabled.code, disabled.reason) == ("FAILED_PRECONDITION", "GOOGLE_SIGN_IN_DISABLED")
            assert "GOOGLE_CLIENT_ID" in disabled.message


async def test_an_unreachable_provider_is_unavailable_with_a_retry_hint(
    database_url: str, clean_redis: str
) -> None:
    from tests.support.infra import free_port

    settings = google_settings(f"http://127.0.0.1:{free_port()}")
    async with (
        running_service("identity", database_url, clean_redis, **settings) as server,
        identity_stub(server.port) as stub,
    ):
        with_error = await refused(
            stub.BeginGoogleSignIn(pb.BeginGoogleSignInRequest(redirect_uri=CALLBACK), metadata=as_(GATEWAY))
        )
    assert (with_error.code, with_error.reason) == ("UNAVAILABLE", "GOOGLE_UNAVAILABLE")
    assert with_error.retry_after is not None
    assert grpc.StatusCode.UNAVAILABLE.name == with_error.code
