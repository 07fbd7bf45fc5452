"""API keys over REST against the real identity service: lifecycle, revocation on every replica, scopes,
ownership, rate limits, failed-authentication limits, and logs that never show a credential."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from servicekit import logging
from tests.e2e.identity.browser import CLIENT_SECRET, Browser, define_user
from tests.e2e.identity.conftest import Stack
from tests.support.edge_gateway import RunningGateway


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def signed_in(gateway: RunningGateway, provider: str, sub: str) -> Browser:
    await define_user(provider, sub)
    browser = Browser(gateway.url)
    assert (await browser.sign_in(sub)).status_code == 302
    return browser


async def new_key(browser: Browser, scopes: list[str], name: str = "ci") -> dict[str, object]:
    reply = await browser.request(
        "POST", "/api/v1/api-keys", json={"display_name": name, "scopes": scopes}, headers=browser.csrf
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


async def seconds_until_refused(base_url: str, key: str, limit: float = 1.0) -> float:
    """Polls /api/v1/me with `key` until it is refused; fails if that takes longer than `limit`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with httpx.AsyncClient(base_url=base_url) as client:
        while (elapsed := loop.time() - started) < limit:
            if (await client.get("/api/v1/me", headers=bearer(key))).status_code == 401:
                return elapsed
            await asyncio.sleep(0.02)
    pytest.fail(f"the revoked key was still accepted {limit} s after the revocation")


async def test_a_key_is_shown_once_listed_without_its_secret_and_refused_everywhere_once_revoked(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    owner = await signed_in(gateway, oidc_provider, "keymaker")
    created = await new_key(owner, ["jobs:read", "keys:manage"])
    key = str(created["key"])
    api_key = created["api_key"]
    assert isinstance(api_key, dict)
    assert key.startswith(f"{api_key['prefix']}_")

    listed = await owner.request("GET", "/api/v1/api-keys")
    assert [k["name"] for k in listed.json()["api_keys"]] == [api_key["name"]]
    assert key.rsplit("_", 1)[1] not in listed.text

    async with stack.start_gateway() as replica, httpx.AsyncClient(base_url=replica.url) as other:
        me = await other.get("/api/v1/me", headers=bearer(key))
        assert me.status_code == 200
        assert me.json()["principal"]["kind"] == "api_key"
        assert me.json()["user"]["email"] == "keymaker@example.com"

        key_id = str(api_key["name"]).removeprefix("apiKeys/")
        revoked = await owner.request("DELETE", f"/api/v1/api-keys/{key_id}", headers=owner.csrf)
        assert revoked.status_code == 200
        assert revoked.json()["api_key"]["state"] == "API_KEY_STATE_REVOKED"

        assert await seconds_until_refused(replica.url, key) < 1.0
        refused = await other.get("/api/v1/me", headers=bearer(key))
        assert refused.json()["error"]["details"]["reason"] == "API_KEY_REVOKED"
        assert (await owner.request("GET", "/api/v1/api-keys")).json()["api_keys"] == []


async def test_a_key_revoked_with_another_key_is_refused_within_a_second(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    owner = await signed_in(gateway, oidc_provider, "rotator")
    manager = str((await new_key(owner, ["keys:manage"]))["key"])
    victim = await new_key(owner, ["jobs:read"], name="old")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/api/v1/me", headers=bearer(str(victim["key"])))).status_code == 200
        victim_id = str(victim["api_key"]["name"]).removeprefix("apiKeys/")  # type: ignore[index]
        revoked = await client.delete(f"/api/v1/api-keys/{victim_id}", headers=bearer(manager))
        assert revoked.status_code == 200
    assert await seconds_until_refused(gateway.url, str(victim["key"])) < 1.0


async def test_a_key_without_keys_manage_is_refused_with_the_missing_scope(
    gateway: RunningGateway, oidc_provider: str
) -> None:
    owner = await signed_in(gateway, oidc_provider, "scoped")
    reader = str((await new_key(owner, ["jobs:read"]))["key"])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        listed = await client.get("/api/v1/api-keys", headers=bearer(reader))
        created = await client.post(
            "/api/v1/api-keys", json={"display_name": "x", "scopes": ["jobs:read"]}, headers=bearer(reader)
        )
        me = await client.get("/api/v1/me", headers=bearer(reader))
    for reply in (listed, created):
        assert reply.status_code == 403
        assert reply.json()["error"]["details"]["reason"] == "SCOPE_MISSING"
        assert reply.json()["error"]["details"]["metadata"]["scope"] == "keys:manage"
    assert me.status_code == 200


async def test_a_key_may_not_grant_a_scope_its_creator_lacks_or_one_that_does_not_exist(
    gateway: RunningGateway, oidc_provider: str
) -> None:
    owner = await signed_in(gateway, oidc_provider, "granter")
    limited = str((await new_key(owner, ["keys:manage"]))["key"])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        escalate = await client.post(
            "/api/v1/api-keys", json={"display_name": "x", "scopes": ["jobs:write"]}, headers=bearer(limited)
        )
    unknown = await owner.request(
        "POST", "/api/v1/api-keys", json={"display_name": "x", "scopes": ["root"]}, headers=owner.csrf
    )
    assert escalate.status_code == 403
    assert escalate.json()["error"]["details"]["reason"] == "SCOPE_NOT_HELD"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"]["reason"] == "SCOPE_UNKNOWN"


async def test_one_user_cannot_see_or_revoke_anothers_keys_or_sessions(
    gateway: RunningGateway, oidc_provider: str
) -> None:
    alice = await signed_in(gateway, oidc_provider, "alice")
    bob = await signed_in(gateway, oidc_provider, "bob")
    bobs_key = await new_key(bob, ["jobs:read"])
    bobs_key_id = str(bobs_key["api_key"]["name"]).removeprefix("apiKeys/")  # type: ignore[index]
    bobs_session = (await bob.request("GET", "/api/v1/sessions")).json()["sessions"][0]["name"]

    key_reply = await alice.request("DELETE", f"/api/v1/api-keys/{bobs_key_id}", headers=alice.csrf)
    session_reply = await alice.request("DELETE", f"/api/v1/{bobs_session}", headers=alice.csrf)
    alices_keys = (await alice.request("GET", "/api/v1/api-keys")).json()["api_keys"]
    alices_sessions = (await alice.request("GET", "/api/v1/sessions")).json()["sessions"]

    assert (key_reply.status_code, session_reply.status_code) == (404, 404)
    assert key_reply.json()["error"]["details"]["reason"] == "API_KEY_NOT_FOUND"
    assert alices_keys == []
    assert bobs_session not in [s["name"] for s in alices_sessions]
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/api/v1/me", headers=bearer(str(bobs_key["key"])))).status_code == 200
    assert (await bob.request("GET", "/api/v1/me")).status_code == 200


async def test_a_plans_rate_limit_answers_429_with_headers_and_recovers(
    stack: Stack, oidc_provider: str
) -> None:
    async with stack.start_gateway(rate_limits="default:3/1.5") as gateway:
        owner = await signed_in(gateway, oidc_provider, "busy")
        key = str((await new_key(owner, ["jobs:read"]))["key"])
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            allowed = [await client.get("/api/v1/me", headers=bearer(key)) for _ in range(3)]
            refused = await client.get("/api/v1/me", headers=bearer(key))
            loop = asyncio.get_running_loop()
            started = loop.time()
            while (again := await client.get("/api/v1/me", headers=bearer(key))).status_code == 429:
                assert loop.time() - started < 10, "the bucket never refilled"
                await asyncio.sleep(0.1)

    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["reason"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) in (1, 2)
    assert again.status_code == 200
    assert again.headers["ratelimit-limit"] == "3"


async def test_failed_authentications_from_one_address_are_cut_off(stack: Stack) -> None:
    async with (
        stack.start_gateway(rate_limit_auth_failures="4/60") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        guesses = [
            await client.get("/api/v1/me", headers=bearer(f"cmfy_Guess{i:03}_{'a' * 43}")) for i in range(6)
        ]
        stale_cookie = await client.get("/api/v1/me", headers={"Cookie": "comfyapi_session=made-up"})
    assert [r.status_code for r in guesses] == [401, 401, 401, 401, 429, 429]
    assert guesses[0].json()["error"]["details"]["reason"] == "API_KEY_INVALID"
    assert guesses[4].json()["error"]["details"]["reason"] == "AUTH_ATTEMPTS_EXCEEDED"
    assert int(guesses[4].headers["retry-after"]) >= 1
    assert stale_cookie.status_code == 429


async def test_no_log_line_shows_a_key_token_cookie_or_secret(
    stack: Stack, gateway: RunningGateway, oidc_provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.configure("test", "debug")
    await define_user(oidc_provider, "quiet")
    browser = Browser(gateway.url)
    begun = await browser.begin()
    callback = await browser.consent(begun.headers["location"], "quiet")
    assert (await browser.request("GET", callback)).status_code == 302
    created = await new_key(browser, ["jobs:read", "keys:manage"])
    key = str(created["key"])
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/api/v1/me", headers=bearer(key))).status_code == 200
        await client.get("/api/v1/me", headers=bearer(key[:-4] + "zzzz"))
    key_id = str(created["api_key"]["name"]).removeprefix("apiKeys/")  # type: ignore[index]
    await browser.request("DELETE", f"/api/v1/api-keys/{key_id}", headers=browser.csrf)
    session_token, csrf_token = browser.cookies["comfyapi_session"], browser.cookies["comfyapi_csrf"]
    await browser.request("POST", "/auth/logout", headers=browser.csrf)

    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "http.finished" in output  # the capture did see the gateway's logs
    secrets = {
        "api key": key,
        "api key secret": key.rsplit("_", 1)[1],
        "session token": session_token,
        "csrf token": csrf_token,
        "oauth client secret": CLIENT_SECRET,
        "authorization code": callback.split("code=", 1)[1].split("&", 1)[0],
    }
    for what, value in secrets.items():
        assert value
        leaked = [line for line in output.splitlines() if value in line]
        assert not leaked, f"the {what} appears in the logs: {leaked[:1]}"
    for line in output.splitlines():
        if line.startswith("{"):
            assert "comfyapi_session=" not in json.dumps(json.loads(line))
