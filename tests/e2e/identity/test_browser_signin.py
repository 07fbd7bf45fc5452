"""Google sign-in through the gateway, end to end: browser, gateway, identity, OIDC provider and back."""

from __future__ import annotations

from tests.e2e.identity.browser import Browser, define_user, query_of, session_count, set_cookies, sql
from tests.e2e.identity.conftest import Stack
from tests.support.edge_gateway import RunningGateway


async def test_a_new_user_signs_in_and_the_session_cookie_reaches_me(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "ada", picture="https://lh3.googleusercontent.com/a/ada")
    browser = Browser(gateway.url)

    begun = await browser.begin("/dashboard")
    authorize = query_of(begun.headers["location"])
    assert begun.headers["location"].startswith(f"{oidc_provider}/")
    assert authorize["code_challenge_method"] == "S256"
    assert len(authorize["code_challenge"]) == 43
    assert authorize["nonce"]
    assert authorize["state"] == browser.oauth_state_cookie
    assert authorize["redirect_uri"] == f"{gateway.url}/auth/google/callback"
    state_cookie = set_cookies(begun)["comfyapi_oauth_state"].attributes
    assert (state_cookie["httponly"], state_cookie["samesite"]) == ("True", "lax")

    callback = await browser.request("GET", await browser.consent(begun.headers["location"], "ada"))
    assert callback.status_code == 302, callback.text
    assert callback.headers["location"] == "/dashboard"
    session = set_cookies(callback)["comfyapi_session"]
    assert (session.attributes["httponly"], session.attributes["samesite"], session.attributes["path"]) == (
        "True",
        "lax",
        "/",
    )
    assert set_cookies(callback)["comfyapi_oauth_state"].value == ""  # spent

    me = await browser.request("GET", "/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["picture_uri"] == "https://lh3.googleusercontent.com/a/ada"
    assert body["principal"]["kind"] == "session"
    assert "keys:manage" in body["principal"]["scopes"]
    assert body["csrf_token"] == browser.cookies["comfyapi_csrf"]
    sessions = (await browser.request("GET", "/api/v1/sessions")).json()["sessions"]
    assert [s["current"] for s in sessions] == [True]


async def test_a_callback_with_another_browsers_state_opens_no_session(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "mallory")
    victim, attacker = Browser(gateway.url), Browser(gateway.url)
    await victim.begin()
    begun = await attacker.begin()
    attackers_callback = await attacker.consent(begun.headers["location"], "mallory")

    reply = await victim.request("GET", attackers_callback)  # login CSRF: the victim is sent the link

    assert reply.status_code == 400
    error = reply.json()["error"]
    assert (error["status"], error["details"]["reason"]) == ("FAILED_PRECONDITION", "OAUTH_STATE_MISMATCH")
    assert "comfyapi_session" not in victim.cookies
    assert await session_count(stack.database_url) == 0


async def test_a_replayed_callback_is_refused_and_opens_no_second_session(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "replay")
    browser = Browser(gateway.url)
    begun = await browser.begin()
    callback = await browser.consent(begun.headers["location"], "replay")
    state_cookie = browser.oauth_state_cookie

    first = await browser.request("GET", callback)
    browser.oauth_state_cookie = state_cookie  # a replay brings the cookie back too
    again = await browser.request("GET", callback)

    assert first.status_code == 302
    assert again.status_code == 400
    assert again.json()["error"]["details"]["reason"] == "OAUTH_STATE_INVALID"
    assert await session_count(stack.database_url) == 1


async def test_an_expired_sign_in_is_refused_without_a_session(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "late")
    browser = Browser(gateway.url)
    begun = await browser.begin()
    callback = await browser.consent(begun.headers["location"], "late")
    # The sign-in outlived its ten minutes: move its deadline into the past rather than wait.
    await sql(
        stack.database_url, "update identity.oauth_states set expire_time = now() - interval '1 second'"
    )

    expired = await browser.request("GET", callback)

    assert expired.status_code == 400
    error = expired.json()["error"]
    assert (error["status"], error["details"]["reason"]) == ("FAILED_PRECONDITION", "OAUTH_STATE_INVALID")
    assert "comfyapi_session" not in browser.cookies
    assert await session_count(stack.database_url) == 0


async def test_a_spent_authorization_code_is_a_401_without_a_session(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "spender")
    first = Browser(gateway.url)
    callback = await first.consent((await first.begin()).headers["location"], "spender")
    assert (await first.request("GET", callback)).status_code == 302
    second = Browser(gateway.url)
    fresh_state = query_of((await second.begin()).headers["location"])["state"]

    reused = await second.request(
        "GET", "/auth/google/callback", params={"code": query_of(callback)["code"], "state": fresh_state}
    )

    assert reused.status_code == 401
    assert reused.headers["www-authenticate"].startswith("Bearer")
    assert reused.json()["error"]["details"]["reason"] == "AUTHORIZATION_CODE_INVALID"
    assert "comfyapi_session" not in second.cookies
    assert await session_count(stack.database_url) == 1


async def test_logout_needs_the_csrf_token_and_ends_the_session(
    stack: Stack, gateway: RunningGateway, oidc_provider: str
) -> None:
    await define_user(oidc_provider, "leaver")
    browser = Browser(gateway.url)
    await browser.sign_in("leaver")

    forged = await browser.request("POST", "/auth/logout")
    assert forged.status_code == 403
    token = browser.cookies["comfyapi_session"]
    out = await browser.request("POST", "/auth/logout", headers=browser.csrf)
    assert out.status_code == 204
    assert "comfyapi_session" not in browser.cookies
    browser.cookies["comfyapi_session"] = token  # a stolen copy of the cookie is dead too
    assert (await browser.request("GET", "/api/v1/me")).status_code == 401
