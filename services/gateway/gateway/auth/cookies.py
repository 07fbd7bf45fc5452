"""The browser cookies of the web app: session, anti-CSRF token and OAuth state.

The session cookie is HttpOnly and SameSite=Lax, so scripts cannot read it and other sites cannot make the
browser send it with their form posts; the CSRF cookie is readable by the page's own script, which echoes it
in the X-CSRF-Token header. The state cookie ties an OAuth callback to the browser that started the sign-in.
"""

from __future__ import annotations

from starlette.responses import Response

from gateway.settings import GatewaySettings

SESSION = "comfyapi_session"
CSRF = "comfyapi_csrf"
OAUTH_STATE = "comfyapi_oauth_state"
OAUTH_STATE_PATH = "/auth/google"
CSRF_HEADER = "x-csrf-token"
# The browser may drop the cookie sooner; identity's idle and absolute expiry decide when the session ends.
SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600


def set_session(response: Response, settings: GatewaySettings, token: str, csrf_token: str) -> None:
    """Hands the browser its session and the anti-CSRF token bound to it."""
    secure = settings.cookie_secure
    response.set_cookie(
        SESSION, token, max_age=SESSION_MAX_AGE_SECONDS, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF, csrf_token, max_age=SESSION_MAX_AGE_SECONDS, httponly=False, samesite="lax", secure=secure
    )


def clear_session(response: Response, settings: GatewaySettings) -> None:
    """Makes the browser forget its session."""
    for name, httponly in ((SESSION, True), (CSRF, False)):
        response.delete_cookie(name, httponly=httponly, samesite="lax", secure=settings.cookie_secure)


def set_oauth_state(response: Response, settings: GatewaySettings, state: str, max_age: int) -> None:
    """Binds a sign-in's state to this browser until it expires."""
    response.set_cookie(
        OAUTH_STATE,
        state,
        max_age=max_age,
        path=OAUTH_STATE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )


def clear_oauth_state(response: Response, settings: GatewaySettings) -> None:
    """Forgets a sign-in's state once the callback has used it."""
    response.delete_cookie(
        OAUTH_STATE, path=OAUTH_STATE_PATH, httponly=True, samesite="lax", secure=settings.cookie_secure
    )
