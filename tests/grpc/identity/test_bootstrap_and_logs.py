"""The bootstrap command for a fresh stack without Google, and what the service's logs never contain."""

from __future__ import annotations

import json
import logging
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from comfyapi.identity.v1 import grant_pb2
from comfyapi.identity.v1 import identity_service_pb2 as pb
from servicekit import logging as service_logging
from tests.grpc.identity.conftest import Identity
from tests.grpc.identity.helpers import (
    CLIENT_SECRET,
    DRIVE_SYNC,
    GATEWAY,
    as_,
    consent,
    define_user,
    refused,
    run_command,
    user_principal,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")


async def test_create_user_prints_a_working_key_and_google_sign_in_later_links_the_account(
    identity: Identity, oidc_provider: str
) -> None:
    code, out, err = await run_command(
        identity.database_url,
        identity.redis_url,
        "create-user",
        "--email",
        "Dev@Example.com",
        "--name",
        "Dev",
        "--scopes",
        "jobs:read",
        "jobs:write",
    )
    assert code == 0, err
    key = out.strip()
    assert re.fullmatch(r"cmfy_[0-9A-Za-z]{8}_[0-9A-Za-z]{43}", key), "stdout is the key alone, for scripts"
    assert "created user users/" in err
    assert key not in err
    resolved = await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=key), metadata=as_(GATEWAY)
    )
    assert sorted(resolved.principal.scopes) == ["jobs:read", "jobs:write"]
    user = resolved.principal.user

    code, out, err = await run_command(
        identity.database_url, identity.redis_url, "create-user", "--email", "dev@example.com"
    )
    assert code == 0, err
    assert f"reused user {user}" in err
    assert out.strip() != key

    await define_user(oidc_provider, "dev-google-sub", email="dev@example.com")
    given = await consent(identity.stub, "dev-google-sub")
    done = await identity.stub.CompleteGoogleSignIn(
        pb.CompleteGoogleSignInRequest(code=given.code, state=given.state), metadata=as_(GATEWAY)
    )
    assert (done.user.name, done.new_user, done.user.google_subject) == (user, False, "dev-google-sub")

    code, _, err = await run_command(
        identity.database_url,
        identity.redis_url,
        "create-user",
        "--email",
        "x@example.com",
        "--scopes",
        "root",
    )
    assert code == 1
    assert "unknown scopes 'root'" in err


async def test_no_secret_reaches_the_log(
    identity: Identity, oidc_provider: str, vault_keys: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    service_logging.configure("identity", "debug", "json")
    # The provider stand-in (playing Google) logs its own request URLs at INFO; those are not this service's.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    await define_user(oidc_provider, "quiet")
    given = await consent(identity.stub, "quiet")
    query = parse_qs(urlsplit(given.authorization_uri).query)
    done = await identity.stub.CompleteGoogleSignIn(
        pb.CompleteGoogleSignInRequest(code=given.code, state=given.state), metadata=as_(GATEWAY)
    )
    replay = await refused(
        identity.stub.CompleteGoogleSignIn(
            pb.CompleteGoogleSignInRequest(code=given.code, state=given.state), metadata=as_(GATEWAY)
        )
    )
    assert replay.reason == "OAUTH_STATE_INVALID"
    me = as_(user_principal(done.user.name, cred=done.session.name))
    await identity.stub.AuthenticateSession(
        pb.AuthenticateSessionRequest(session_token=done.session_token), metadata=as_(GATEWAY)
    )
    created = await identity.stub.CreateApiKey(
        pb.CreateApiKeyRequest(display_name="k", scopes=["jobs:read"]), metadata=me
    )
    await identity.stub.AuthenticateApiKey(
        pb.AuthenticateApiKeyRequest(key=created.key), metadata=as_(GATEWAY)
    )
    await refused(
        identity.stub.AuthenticateApiKey(
            pb.AuthenticateApiKeyRequest(key=created.key[:-1] + "0"), metadata=as_(GATEWAY)
        )
    )
    await identity.stub.RevokeApiKey(pb.RevokeApiKeyRequest(name=created.api_key.name), metadata=me)
    refresh_token = f"1//refresh-{uuid.uuid4().hex}"
    stored = await identity.stub.StoreGrant(
        pb.StoreGrantRequest(
            owner=done.user.name,
            provider=grant_pb2.GRANT_PROVIDER_GOOGLE_DRIVE,
            refresh_token=refresh_token,
            scopes=["https://www.googleapis.com/auth/drive"],
            request_id=str(uuid.uuid4()),
        ),
        metadata=as_(DRIVE_SYNC),
    )
    # The stand-in provider does not know this refresh token: the refresh is refused and logged as such.
    await refused(
        identity.stub.GetAccessToken(
            pb.GetAccessTokenRequest(owner=done.user.name, provider=grant_pb2.GRANT_PROVIDER_GOOGLE_DRIVE),
            metadata=as_(DRIVE_SYNC),
        )
    )
    await identity.stub.DeleteUser(
        pb.DeleteUserRequest(name="users/me", request_id=str(uuid.uuid4())), metadata=me
    )

    output = capsys.readouterr()
    lines = [line for line in (output.out + output.err).splitlines() if line.strip()]
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert {"signin.completed", "api_key.created", "api_key.revoked", "grant.stored", "user.deleted"} <= {
        e.get("event") for e in events
    }, "the flow above must have been logged for this test to mean anything"
    secrets = {
        "session token": done.session_token,
        "csrf token": done.csrf_token,
        "api key": created.key,
        "api key secret": created.key.rpartition("_")[2],
        "refresh token": refresh_token,
        "client secret": CLIENT_SECRET,
        "authorization code": given.code,
        "state": given.state,
        "nonce": query["nonce"][0],
        "vault key": vault_keys[0].partition(":")[2],
    }
    text = "\n".join(lines)
    leaked = [what for what, value in secrets.items() if value in text]
    assert not leaked, f"found in the logs: {leaked}"
    assert stored.grant.name in text, "ids are logged, secrets are not"
