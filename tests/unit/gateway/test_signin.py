"""The sign-in relay against the identity fake: state cookie, callback checks, session cookie, sign-out."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.fake_identity import FakeIdentityState

Identity = tuple[FakeIdentityState, str]


def cookie_attributes(reply: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie header for `name`, with `value` holding its value."""
    for header in reply.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)
        if name in jar:
            morsel = jar[name]
            return {"value": morsel.value, **{k: str(v) for k, v in morsel.items() if v}}
    raise AssertionError(f"no Set-Cookie for {name}")


async def begin(client: httpx.AsyncClient, return_path: str = "/") -> tuple[str, str]:
    reply = await client.get("/auth/google/login", params={"return_path": return_path})
    assert reply.status_code == 302, reply.text
    state = parse_qs(urlsplit(reply.headers["location"]).query)["state"][0]
    cookie = cookie_attributes(reply, "comfyapi_oauth_state")
    assert cookie["value"] == state
    assert (cookie["httponly"], cookie["samesite"], cookie["path"]) == ("True", "lax", "/auth/google")
    return state, cookie["value"]


async def test_sign_in_sets_a_session_cookie_and_me_answers(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = await begin(client, "/dashboard")
    callback = await client.get(
        "/auth/google/callback",
        params={"code": "zoe@example.com", "state": state},
        headers={"Cookie": f"comfyapi_oauth_state={state}"},
    )
    assert callback.status_code == 302, callback.text
    assert callback.headers["location"] == "/dashboard"
    session = cookie_attributes(callback, "comfyapi_session")
    assert session["httponly"] == "True"
    assert session["samesite"] == "lax"
    assert "secure" not in session  # COOKIE_SECURE=false in tests; the default is true
    csrf = cookie_attributes(callback, "comfyapi_csrf")
    assert "httponly" not in csrf

    me = await client.get("/api/v1/me", headers={"Cookie": f"comfyapi_session={session['value']}"})
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "zoe@example.com"
    assert me.json()["csrf_token"] == csrf["value"]


async def test_a_callback_whose_state_is_not_this_browsers_is_refused_before_identity(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    fake, _ = identity
    state, _ = await begin(client)
    other, _ = await begin(client)

    mismatch = await client.get(
        "/auth/google/callback",
        params={"code": "x@example.com", "state": state},
        headers={"Cookie": f"comfyapi_oauth_state={other}"},
    )
    no_cookie = await client.get("/auth/google/callback", params={"code": "x@example.com", "state": state})
    no_code = await client.get(
        "/auth/google/callback", params={"state": state}, headers={"Cookie": f"comfyapi_oauth_state={state}"}
    )

    assert [r.status_code for r in (mismatch, no_cookie, no_code)] == [400, 400, 400]
    assert mismatch.json()["error"]["details"]["reason"] == "OAUTH_STATE_MISMATCH"
    assert no_cookie.json()["error"]["details"]["reason"] == "OAUTH_STATE_MISMATCH"
    assert no_code.json()["error"]["details"]["field_violations"][0]["field"] == "query.code"
    assert fake.calls["CompleteGoogleSignIn"] == 0
    assert all("comfyapi_session" not in r.headers.get("set-cookie", "") for r in (mismatch, no_cookie))


async def test_a_replayed_callback_is_refused_by_identity(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    state, _ = await begin(client)
    params = {"code": "ray@example.com", "state": state}
    cookie = {"Cookie": f"comfyapi_oauth_state={state}"}
    first = await client.get("/auth/google/callback", params=params, headers=cookie)
    replay = await client.get("/auth/google/callback", params=params, headers=cookie)
    assert first.status_code == 302
    assert replay.status_code == 400
    assert replay.json()["error"]["details"]["reason"] == "OAUTH_STATE_INVALID"


async def test_an_open_redirect_is_refused_at_login(client: httpx.AsyncClient) -> None:
    reply = await client.get("/auth/google/login", params={"return_path": "//evil.example"})
    assert reply.status_code == 400
    assert reply.json()["error"]["details"]["field_violations"][0]["field"] == "query.return_path"


async def test_logout_revokes_the_session_and_clears_the_cookies(
    identity: Identity, client: httpx.AsyncClient
) -> None:
    fake, _ = identity
    user = fake.add_user("sam@example.com")
    _, token, csrf = fake.add_session(user)
    cookie = {"Cookie": f"comfyapi_session={token}"}

    forged = await client.post("/auth/logout", headers=cookie)
    done = await client.post("/auth/logout", headers={**cookie, "X-CSRF-Token": csrf})
    after = await client.get("/api/v1/me", headers=cookie)

    assert forged.status_code == 403
    assert done.status_code == 204
    assert cookie_attributes(done, "comfyapi_session")["value"] == ""
    assert after.status_code == 401
