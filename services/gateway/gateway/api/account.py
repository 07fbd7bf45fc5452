"""REST routes of the caller's own account: profile, API keys and browser sessions.

Identity enforces ownership (another user's key or session is NOT_FOUND); the edge checks the obvious scope
first so a key without `keys:manage` is told which scope it lacks without a round trip.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import timestamp_pb2
from google.protobuf.json_format import MessageToDict
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from comfyapi.identity.v1 import identity_service_pb2 as identity_pb
from gateway.auth import cookies
from gateway.auth.authenticator import Authenticated
from gateway.auth.dependencies import SECURED, caller, require_scope
from gateway.auth.principals import resource_tags
from servicekit.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["account"])
log = get_logger("gateway.account")
KEYS_MANAGE = "keys:manage"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key or session"},
    403: {"description": "The credential lacks a scope, or the anti-CSRF token is missing"},
    429: {"description": "Rate limit exceeded; see Retry-After"},
}


KeyManager = Annotated[Authenticated, Depends(require_scope(KEYS_MANAGE))]


def _json(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _timeout(request: Request) -> float:
    return float(request.app.state.settings.backend_timeout_seconds)


class CreateApiKeyBody(BaseModel):
    """A new API key's label, scopes and optional expiry."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=100, description="A label such as `ci pipeline`.")
    scopes: list[str] = Field(
        min_length=1, max_length=20, description="Scopes to grant, such as `jobs:read` or `jobs:write`."
    )
    expire_time: AwareDatetime | None = Field(
        None, description="When the key stops working (RFC 3339 with a time zone); omit for no expiry."
    )


@router.get(
    "/me",
    openapi_extra=SECURED,
    summary="The signed-in user and the credential in use",
    responses={200: {"description": "`{user, principal, csrf_token?}`"}, **ERRORS},
    response_class=JSONResponse,
)
async def me(request: Request) -> Response:
    # The hottest authenticated route checks the caller inline rather than through a dependency, which
    # FastAPI resolves at a measurable cost per request (see benchmarks/auth_throughput.py), and answers
    # with bytes rendered once per credential and profile rather than encoding the same JSON each time.
    found = caller(request)
    edge = request.app.state.edge
    rendered = edge.rendered.get(found.bucket_key)
    if rendered is None or rendered[0] is not found:
        rendered = await _render_me(request, found)
    return Response(rendered[1], media_type="application/json")


async def _render_me(request: Request, found: Authenticated) -> tuple[Authenticated, bytes]:
    """The body of /me, encoded as JSONResponse encodes, and kept as long as the profile it shows."""
    edge = request.app.state.edge
    principal = found.principal
    profile = edge.profiles.get(principal.subject) or await _profile(request, principal.subject)
    body: dict[str, Any] = {
        "user": profile,
        "principal": {
            "kind": principal.kind,
            "scopes": sorted(principal.scopes),
            "plan": principal.plan,
            "credential": principal.credential_id,
        },
    }
    if principal.kind == "session":
        body["csrf_token"] = found.csrf_token
    encoded = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    rendered = (found, encoded)
    edge.rendered.put(found.bucket_key, rendered, edge.profiles.time_left(principal.subject), found.tags)
    return rendered


async def _profile(request: Request, subject: str) -> dict[str, Any]:
    """The caller's user record from identity, kept in the same short-lived cache as their credential."""
    edge = request.app.state.edge
    reply = await request.app.state.backends.identity.GetUser(
        identity_pb.GetUserRequest(name="users/me"), timeout=_timeout(request)
    )
    profile = _json(reply.user)
    ttl = edge.authenticator.ttl(edge.settings.auth_cache_max_ttl_seconds)
    edge.profiles.put(subject, profile, ttl, resource_tags("user", subject))
    return profile


@router.get(
    "/api-keys", openapi_extra=SECURED, summary="List your API keys (never their secrets)", responses=ERRORS
)
async def list_api_keys(
    request: Request,
    _: KeyManager,
    page_size: int = Query(0, ge=0, le=100, description="Keys per page; 0 means 50."),
    page_token: str = Query("", max_length=500, description="next_page_token of the previous page."),
    show_inactive: bool = Query(False, description="Include revoked and expired keys."),
) -> dict[str, Any]:
    reply = await request.app.state.backends.identity.ListApiKeys(
        identity_pb.ListApiKeysRequest(
            page_size=page_size, page_token=page_token, show_inactive=show_inactive
        ),
        timeout=_timeout(request),
    )
    return {"api_keys": [_json(key) for key in reply.api_keys], "next_page_token": reply.next_page_token}


@router.post(
    "/api-keys",
    openapi_extra=SECURED,
    summary="Create an API key; the full key is in this response only",
    status_code=201,
    responses=ERRORS,
)
async def create_api_key(request: Request, _: KeyManager, body: CreateApiKeyBody) -> dict[str, Any]:
    message = identity_pb.CreateApiKeyRequest(display_name=body.display_name, scopes=body.scopes)
    if body.expire_time is not None:
        message.expire_time.CopyFrom(_timestamp(body.expire_time))
    reply = await request.app.state.backends.identity.CreateApiKey(message, timeout=_timeout(request))
    log.info("api_key.created", name=reply.api_key.name, scopes=list(reply.api_key.scopes))
    return {"api_key": _json(reply.api_key), "key": reply.key}


@router.delete(
    "/api-keys/{api_key_id}", openapi_extra=SECURED, summary="Revoke one of your API keys", responses=ERRORS
)
async def revoke_api_key(
    request: Request,
    found: KeyManager,
    api_key_id: str = Path(pattern=ID_PATTERN, description="The id in the key's name `apiKeys/{id}`."),
) -> dict[str, Any]:
    name = f"apiKeys/{api_key_id}"
    reply = await request.app.state.backends.identity.RevokeApiKey(
        identity_pb.RevokeApiKeyRequest(name=name), timeout=_timeout(request)
    )
    await request.app.state.edge.revoked("api_key", name, found.principal.subject)
    log.info("api_key.revoked", name=name)
    return {"api_key": _json(reply.api_key)}


@router.get("/sessions", openapi_extra=SECURED, summary="List your signed-in browsers", responses=ERRORS)
async def list_sessions(
    request: Request,
    _: KeyManager,
    page_size: int = Query(0, ge=0, le=100, description="Sessions per page; 0 means 50."),
    page_token: str = Query("", max_length=500, description="next_page_token of the previous page."),
) -> dict[str, Any]:
    reply = await request.app.state.backends.identity.ListSessions(
        identity_pb.ListSessionsRequest(page_size=page_size, page_token=page_token), timeout=_timeout(request)
    )
    return {"sessions": [_json(s) for s in reply.sessions], "next_page_token": reply.next_page_token}


@router.delete(
    "/sessions/{session_id}",
    openapi_extra=SECURED,
    summary="Sign one of your browsers out",
    status_code=204,
    responses=ERRORS,
)
async def revoke_session(
    request: Request,
    found: KeyManager,
    session_id: str = Path(pattern=ID_PATTERN, description="The id in the session's name `sessions/{id}`."),
) -> Response:
    name = f"sessions/{session_id}"
    await request.app.state.backends.identity.RevokeSession(
        identity_pb.RevokeSessionRequest(name=name), timeout=_timeout(request)
    )
    await request.app.state.edge.revoked("session", name, found.principal.subject)
    log.info("session.revoked", session=name)
    response = Response(status_code=204)
    if found.principal.credential_id == name:
        cookies.clear_session(response, request.app.state.settings)
    return response


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp
