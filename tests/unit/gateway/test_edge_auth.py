"""Authentication at the edge against the identity fake: API keys, sessions, CSRF, scopes and the cache."""

from __future__ import annotations

import asyncio
import json

import httpx
from redis.asyncio import Redis

from gateway.auth.revocations import CHANNEL
from tests.support.edge_gateway import RunningGateway
from tests.support.fake_identity import FakeIdentityState
from tests.unit.gateway.conftest import StartGateway

Identity = tuple[FakeIdentityState, str]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def refused_within(client: httpx.AsyncClient, key: str, seconds: float) -> float:
    """Polls /api/v1/me with `key` until it is refused; returns how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        if (await client.get("/api/v1/me", headers=bearer(key))).status_code == 401:
            return loop.time() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"the key was still accepted after {seconds} s")


async def test_an_api_key_reaches_me_and_is_then_served_from_the_cache(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    user = state.add_user("ada@example.com", plan="pro")
    key = state.add_key(user, scopes=("jobs:read",))

    first = await client.get("/api/v1/me", headers=bearer(key))
    second = await client.get("/api/v1/me", headers=bearer(key))

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["principal"] == {
        "kind": "api_key",
        "scopes": ["jobs:read"],
        "plan": "pro",
        "credential": "apiKeys/k1",
    }
    assert "csrf_token" not in body
    assert second.json() == body
    assert (state.calls["AuthenticateApiKey"], state.calls["GetUser"]) == (1, 1)


async def test_no_credentials_is_a_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/me")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    error = reply.json()["error"]
    assert (error["status"], error["details"]["reason"]) == ("UNAUTHENTICATED", "CREDENTIALS_MISSING")


async def test_a_wrong_key_or_scheme_is_a_401_naming_the_reason(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("bob@example.com"))

    wrong = await client.get("/api/v1/me", headers=bearer(key[:-3] + "xyz"))
    basic = await client.get("/api/v1/me", headers={"Authorization": "Basic Ym9iOnB3"})
    empty = await client.get("/api/v1/me", headers={"Authorization": "Bearer"})

    assert [r.status_code for r in (wrong, basic, empty)] == [401, 401, 401]
    assert wrong.json()["error"]["details"]["reason"] == "API_KEY_INVALID"
    assert basic.json()["error"]["details"]["reason"] == "AUTHORIZATION_MALFORMED"
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in (wrong, basic, empty))


async def test_a_missing_scope_is_a_403_naming_it(identity: Identity, client: httpx.AsyncClient) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("cy@example.com"), scopes=("jobs:read",))

    reply = await client.get("/api/v1/api-keys", headers=bearer(key))

    assert reply.status_code == 403
    error = reply.json()["error"]
    assert error["details"]["reason"] == "SCOPE_MISSING"
    assert error["details"]["metadata"] == {"scope": "keys:manage"}
    assert "keys:manage" in error["message"]
    assert state.calls["ListApiKeys"] == 0


async def test_a_key_revoked_through_one_replica_is_refused_by_another_within_a_second(
    identity: Identity, gateway: RunningGateway, start_gateway: StartGateway
) -> None:
    state, _ = identity
    user = state.add_user("dee@example.com")
    admin, victim = state.add_key(user), state.add_key(user)
    async with (
        start_gateway() as other,
        httpx.AsyncClient(base_url=gateway.url) as one,
        httpx.AsyncClient(base_url=other.url) as two,
    ):
        assert (await two.get("/api/v1/me", headers=bearer(victim))).status_code == 200  # now cached there
        revoked = await one.delete("/api/v1/api-keys/k2", headers=bearer(admin))
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["api_key"]["state"] == "API_KEY_STATE_REVOKED"
        assert (await one.get("/api/v1/me", headers=bearer(victim))).status_code == 401
        assert await refused_within(two, victim, seconds=1.0) < 1.0


async def test_a_revocation_published_by_identity_empties_the_cache(
    identity: Identity, gateway: RunningGateway, clean_redis: str
) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("eve@example.com"))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200
        state.revoke_key("apiKeys/k1")  # identity's own record changes; the gateway's cache does not know yet
        assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200
        redis = Redis.from_url(clean_redis)
        await redis.publish(
            CHANNEL, json.dumps({"kind": "api_key", "name": "apiKeys/other", "prefix": key.rsplit("_", 1)[0]})
        )
        await redis.aclose()
        assert await refused_within(client, key, seconds=1.0) < 1.0


async def test_me_shows_a_changed_plan_and_profile_once_identity_announces_the_user_changed(
    identity: Identity, gateway: RunningGateway, clean_redis: str
) -> None:
    state, _ = identity
    user = state.add_user("fay@example.com")
    key = state.add_key(user, scopes=("jobs:read",))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        before = (await client.get("/api/v1/me", headers=bearer(key))).json()
        state.users[user].plan_id, state.users[user].display_name = "pro", "Fay"
        assert (await client.get("/api/v1/me", headers=bearer(key))).json() == before  # cached until told
        redis = Redis.from_url(clean_redis)
        await redis.publish(CHANNEL, json.dumps({"kind": "user", "name": user, "user": user}))
        await redis.aclose()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (after := (await client.get("/api/v1/me", headers=bearer(key))).json()) == before:
            assert loop.time() - started < 1.0, "the cached answer outlived the user's change"
            await asyncio.sleep(0.02)
    assert (before["principal"]["plan"], before["user"]["display_name"]) == ("free", "fay")
    assert (after["principal"]["plan"], after["user"]["display_name"]) == ("pro", "Fay")
    assert state.calls["AuthenticateApiKey"] == state.calls["GetUser"] == 2


async def test_a_browser_post_needs_the_sessions_csrf_token(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    user = state.add_user("fay@example.com")
    _, token, csrf = state.add_session(user)
    cookie = {"Cookie": f"comfyapi_session={token}"}
    body = {"display_name": "laptop", "scopes": ["jobs:read"]}

    listed = await client.get("/api/v1/api-keys", headers=cookie)
    missing = await client.post("/api/v1/api-keys", json=body, headers=cookie)
    wrong = await client.post("/api/v1/api-keys", json=body, headers={**cookie, "X-CSRF-Token": "nope"})
    right = await client.post("/api/v1/api-keys", json=body, headers={**cookie, "X-CSRF-Token": csrf})

    assert listed.status_code == 200
    assert [missing.status_code, wrong.status_code] == [403, 403]
    assert missing.json()["error"]["details"]["reason"] == "CSRF_TOKEN_MISSING"
    assert wrong.json()["error"]["details"]["reason"] == "CSRF_TOKEN_INVALID"
    assert state.calls["CreateApiKey"] == 1
    assert right.status_code == 201
    assert right.json()["key"].startswith("cmfy_")


async def test_a_bearer_request_with_a_cookie_is_not_a_browser_request(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    user = state.add_user("gus@example.com")
    key = state.add_key(user)
    _, token, _ = state.add_session(user)

    reply = await client.post(
        "/api/v1/api-keys",
        json={"display_name": "ci", "scopes": ["jobs:read"]},
        headers={**bearer(key), "Cookie": f"comfyapi_session={token}"},
    )

    assert reply.status_code == 201


async def test_a_stale_session_cookie_is_a_401_that_clears_it(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/me", headers={"Cookie": "comfyapi_session=gone"})
    assert reply.status_code == 401
    assert reply.json()["error"]["details"]["reason"] == "SESSION_INVALID"
    assert 'comfyapi_session=""' in reply.headers["set-cookie"]


async def test_a_bad_body_is_a_400_naming_the_field(identity: Identity, client: httpx.AsyncClient) -> None:
    state, _ = identity
    key = state.add_key(state.add_user("hal@example.com"))

    empty_name = await client.post(
        "/api/v1/api-keys", json={"display_name": "", "scopes": ["jobs:read"]}, headers=bearer(key)
    )
    no_scopes = await client.post(
        "/api/v1/api-keys", json={"display_name": "x", "scopes": []}, headers=bearer(key)
    )
    naive = await client.post(
        "/api/v1/api-keys",
        json={"display_name": "x", "scopes": ["jobs:read"], "expire_time": "2031-01-01T00:00:00"},
        headers=bearer(key),
    )
    bad_id = await client.delete("/api/v1/api-keys/not%20an%20id", headers=bearer(key))

    fields = [
        r.json()["error"]["details"]["field_violations"][0]["field"]
        for r in (empty_name, no_scopes, naive, bad_id)
    ]
    assert fields == ["body.display_name", "body.scopes", "body.expire_time", "path.api_key_id"]
    assert {r.status_code for r in (empty_name, no_scopes, naive, bad_id)} == {400}


async def test_another_users_key_or_session_is_not_found(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = identity
    alice, bob = state.add_user("alice@example.com"), state.add_user("bob@example.com")
    alice_key = state.add_key(alice)
    state.add_key(bob)
    state.add_session(bob)

    key_reply = await client.delete("/api/v1/api-keys/k2", headers=bearer(alice_key))
    session_reply = await client.delete("/api/v1/sessions/s1", headers=bearer(alice_key))
    listed = await client.get("/api/v1/api-keys", headers=bearer(alice_key))

    assert (key_reply.status_code, session_reply.status_code) == (404, 404)
    assert [k["name"] for k in listed.json()["api_keys"]] == ["apiKeys/k1"]


async def test_ready_reports_redis_without_depending_on_it(client: httpx.AsyncClient) -> None:
    reply = await client.get("/ready")
    assert reply.json()["redis"] == "ok"
