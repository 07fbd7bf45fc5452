"""FastAPI dependencies that require a principal or a scope, and document both schemes in OpenAPI.

The middleware has already checked whatever credential came with the request; these only decide whether the
route may run with what it found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import cookies
from gateway.auth.authenticator import Authenticated
from gateway.auth.middleware import authenticated
from servicekit import errors

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="cmfy_<8 characters>_<43 characters>",
    description="An API key created at /api/v1/api-keys, sent as `Authorization: Bearer <key>`.",
)
session_scheme = APIKeyCookie(
    name=cookies.SESSION,
    auto_error=False,
    scheme_name="Session",
    description="The web app's session cookie; state-changing requests also need the `X-CSRF-Token` header.",
)


async def require_principal(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _session: Annotated[str | None, Depends(session_scheme)],
) -> Authenticated:
    """The authenticated caller; anonymous requests get 401."""
    found = authenticated(request)
    if found is None:
        raise errors.Unauthenticated(
            "this endpoint needs `Authorization: Bearer <api key>` or a signed-in session",
            reason="CREDENTIALS_MISSING",
        )
    return found


def require_scope(scope: str) -> Callable[..., Awaitable[Authenticated]]:
    """A dependency that also requires `scope` (sessions hold every scope)."""

    async def dependency(found: Annotated[Authenticated, Depends(require_principal)]) -> Authenticated:
        if not found.principal.has_scope(scope):
            raise errors.PermissionDenied(
                f"this credential lacks the scope '{scope}'",
                reason="SCOPE_MISSING",
                metadata={"scope": scope},
            )
        return found

    return dependency
