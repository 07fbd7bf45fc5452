"""Browser sign-in with Google and sign-out, relayed to IdentityService.

Identity owns the OpenID Connect flow (state, nonce, PKCE, the code exchange and the ID token checks); the
gateway binds the flow's state to the browser in a short-lived HttpOnly cookie, so a callback that arrives in
another browser (a login-CSRF attempt) is refused before identity is asked, and hands out the session cookie.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from comfyapi.identity.v1 import identity_service_pb2 as identity_pb
from gateway import errors as http_errors
from gateway.auth import cookies
from gateway.auth.middleware import authenticated, client_ip
from gateway.auth.principals import GATEWAY
from servicekit import context, errors
from servicekit.logging import get_logger

router = APIRouter(prefix="/auth", tags=["sign-in"])
log = get_logger("gateway.signin")
CALLBACK_PATH = "/auth/google/callback"
RETURN_PATH_PATTERN = r"^/([^/\\\s][^\s]*)?$"
STATE_COOKIE_MAX_SECONDS = 900
USER_AGENT_LIMIT = 512


def _callback_url(request: Request) -> str:
    base = request.app.state.settings.public_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK_PATH


@router.get(
    "/google/login",
    summary="Start signing in with Google",
    status_code=302,
    responses={302: {"description": "Redirect to Google's consent page"}},
)
async def google_login(
    request: Request,
    return_path: str = Query(
        "/", max_length=512, pattern=RETURN_PATH_PATTERN, description="Site path to return to after sign-in."
    ),
) -> Response:
    state = request.app.state
    with context.bound(context.request_id(), GATEWAY):
        reply = await state.backends.identity.BeginGoogleSignIn(
            identity_pb.BeginGoogleSignInRequest(
                redirect_uri=_callback_url(request), return_path=return_path
            ),
            timeout=state.settings.backend_timeout_seconds,
        )
    lifetime = int(reply.expire_time.seconds - time.time()) if reply.HasField("expire_time") else 600
    response = RedirectResponse(reply.authorization_uri, status_code=302)
    cookies.set_oauth_state(
        response, state.settings, reply.state, max(1, min(lifetime, STATE_COOKIE_MAX_SECONDS))
    )
    return response


@router.get(
    "/google/callback",
    summary="Finish signing in with Google",
    status_code=302,
    responses={
        302: {"description": "Signed in: session cookie set, redirect to the app"},
        400: {"description": "State mismatch, a used or expired state, or an error from Google"},
        401: {"description": "The ID token was refused"},
    },
)
async def google_callback(
    request: Request,
    code: str = Query("", max_length=2048, description="The authorization code from Google."),
    state: str = Query("", max_length=512, description="The state given to Google at login."),
    error: str = Query("", max_length=256, description="Google's error code when consent failed."),
) -> Response:
    settings = request.app.state.settings
    try:
        reply = await _complete(request, code, state, error)
    except errors.DomainError as exc:
        log.info("signin.refused", reason=exc.reason)
        response: Response = http_errors.domain_response(exc)
        cookies.clear_oauth_state(response, settings)
        return response
    log.info("signin.completed", user=reply.user.name, new_user=reply.new_user)
    response = RedirectResponse(_safe_return_path(reply.return_path), status_code=302)
    cookies.set_session(response, settings, reply.session_token, reply.csrf_token)
    cookies.clear_oauth_state(response, settings)
    return response


async def _complete(
    request: Request, code: str, state: str, error: str
) -> identity_pb.CompleteGoogleSignInResponse:
    if error:
        raise errors.FailedPrecondition(
            "Google did not grant the sign-in", reason="OAUTH_PROVIDER_ERROR", metadata={"error": error}
        )
    missing = [
        errors.FieldViolation(f"query.{name}", "required")
        for name, value in (("code", code), ("state", state))
        if not value
    ]
    if missing:
        raise errors.InvalidArgument(
            "the callback lacks code or state", reason="FIELD_INVALID", violations=tuple(missing)
        )
    bound = request.cookies.get(cookies.OAUTH_STATE, "")
    if not bound or not hmac.compare_digest(bound.encode(), state.encode()):
        raise errors.FailedPrecondition(
            "this sign-in was not started in this browser; start again", reason="OAUTH_STATE_MISMATCH"
        )
    settings = request.app.state.settings
    with context.bound(context.request_id(), GATEWAY):
        reply: identity_pb.CompleteGoogleSignInResponse = (
            await request.app.state.backends.identity.CompleteGoogleSignIn(
                identity_pb.CompleteGoogleSignInRequest(
                    code=code,
                    state=state,
                    user_agent=request.headers.get("user-agent", "")[:USER_AGENT_LIMIT],
                    client_ip=client_ip(request.scope),
                ),
                timeout=settings.backend_timeout_seconds,
            )
        )
    return reply


def _safe_return_path(path: str) -> str:
    # Only site-relative paths: an absolute or protocol-relative URL here would be an open redirect.
    if path.startswith("/") and not path.startswith(("//", "/\\")):
        return path
    return "/"


@router.post(
    "/logout",
    summary="Sign out of this browser",
    status_code=204,
    responses={204: {"description": "Signed out; the session is revoked and its cookies cleared"}},
)
async def logout(request: Request) -> Response:
    state = request.app.state
    found = authenticated(request)
    if found is not None and found.principal.kind != "session":
        raise errors.FailedPrecondition(
            "sign-out ends a browser session; revoke API keys with DELETE /api/v1/api-keys/{id}",
            reason="SESSION_REQUIRED",
        )
    if found is not None:
        name = found.principal.credential_id
        await state.backends.identity.RevokeSession(
            identity_pb.RevokeSessionRequest(name=name), timeout=state.settings.backend_timeout_seconds
        )
        await state.edge.revoked("session", name, found.principal.subject)
        log.info("session.signed_out", session=name)
    response = Response(status_code=204)
    cookies.clear_session(response, state.settings)
    return response
