"""FastAPI dependencies that require a principal or a scope, and the OpenAPI description of both schemes.

The middleware has already checked whatever credential came with the request; these only decide whether the
route may run with what it found. They take nothing but the request: FastAPI's security classes would
re-parse the headers and add sub-dependencies to every call on the hottest routes, so the schemes are
described in the OpenAPI document directly (`install_security_schemes`, `SECURED`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi

from gateway.auth import cookies
from gateway.auth.authenticator import Authenticated
from gateway.auth.middleware import authenticated
from servicekit import errors

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "cmfy_<8 characters>_<43 characters>",
        "description": "An API key created at /api/v1/api-keys, sent as `Authorization: Bearer <key>`.",
    },
    "Session": {
        "type": "apiKey",
        "in": "cookie",
        "name": cookies.SESSION,
        "description": "The web app's session cookie; state-changing requests also need `X-CSRF-Token`.",
    },
}
# `openapi_extra` of a route that needs either credential.
SECURED: dict[str, Any] = {"security": [{"ApiKey": []}, {"Session": []}]}


def caller(request: Request) -> Authenticated:
    """The authenticated caller; anonymous requests get 401."""
    found = authenticated(request)
    if found is None:
        raise errors.Unauthenticated(
            "this endpoint needs `Authorization: Bearer <api key>` or a signed-in session",
            reason="CREDENTIALS_MISSING",
        )
    return found


async def require_principal(request: Request) -> Authenticated:
    """`caller` as a dependency."""
    return caller(request)


def require_scope(scope: str) -> Callable[[Request], Awaitable[Authenticated]]:
    """A dependency that requires a caller holding `scope` (sessions hold every scope)."""

    async def dependency(request: Request) -> Authenticated:
        found = caller(request)
        if not found.principal.has_scope(scope):
            raise errors.PermissionDenied(
                f"this credential lacks the scope '{scope}'",
                reason="SCOPE_MISSING",
                metadata={"scope": scope},
            )
        return found

    return dependency


def install_security_schemes(app: FastAPI, body_schema: dict[str, Any] | None = None) -> None:
    """Adds the two schemes to the app's OpenAPI components, with the schemas of bodies routes read by hand
    (`body_schema` is a pydantic JSON schema whose `$defs` join the components too)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components["securitySchemes"] = SECURITY_SCHEMES
            if body_schema is not None:
                defs = dict(body_schema.get("$defs", {}))
                defs[body_schema["title"]] = {k: v for k, v in body_schema.items() if k != "$defs"}
                components.setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
