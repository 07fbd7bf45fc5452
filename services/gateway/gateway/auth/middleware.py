"""Authentication, CSRF protection and rate limits at the edge, in front of every `/api/` and `/auth/` route.

A bearer API key wins over a cookie; a request with a session cookie and no bearer is a browser request and
needs the session's anti-CSRF token in `X-CSRF-Token` unless its method is safe. A credential that is
presented must be valid (401 otherwise, even on a route that also serves anonymous callers). Routes decide
whether they need a principal at all (see `gateway.auth.dependencies`).

The principal is bound into the call context for the rest of the request, so every gRPC call the route makes
carries it in metadata. The RateLimit-* headers of the caller's bucket go on every response.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import errors as http_errors
from gateway.auth import cookies
from gateway.auth.authenticator import Authenticated
from gateway.auth.edge import Edge
from gateway.ratelimit import Bucket, Verdict, plan_limit
from servicekit import context, errors

GUARDED_PREFIXES = ("/api/", "/auth/")
# Sign-in routes must work with a stale session cookie, so they never look at credentials.
ANONYMOUS_PREFIXES = ("/auth/google/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUTH_STATE_KEY = "auth"


def client_ip(scope: Scope) -> str:
    """The peer address (uvicorn has already applied X-Forwarded-For from trusted proxies)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class EdgeAuth:
    """Pure ASGI middleware, so the context it binds is the one the endpoint runs in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        edge: Edge = scope["app"].state.edge
        request = Request(scope)
        ip = client_ip(scope)
        auth: Authenticated | None = None
        verdict: Verdict | None = None
        try:
            if not path.startswith(ANONYMOUS_PREFIXES):
                auth = await _authenticate(edge, request, ip)
            verdict = await edge.limiter.charge(_buckets(edge, auth, ip))
            if verdict is not None and not verdict.allowed:
                raise errors.ResourceExhausted(
                    f"rate limit of {verdict.limit} requests exceeded; "
                    f"retry in {verdict.retry_after_seconds} s",
                    reason="RATE_LIMITED",
                    retry_after=verdict.retry_after_seconds,
                )
            if auth is not None and auth.principal.kind == "session":
                _check_csrf(request, auth)
        except errors.DomainError as exc:
            response = http_errors.domain_response(exc)
            _add_headers(response.raw_headers, verdict)
            if exc.code == "UNAUTHENTICATED" and cookies.SESSION in request.cookies:
                cookies.clear_session(response, edge.settings)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[AUTH_STATE_KEY] = auth

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _add_headers(list(message.get("headers", [])), verdict)
            await send(message)

        with context.bound(context.request_id(), auth.principal if auth else None):
            await self.app(scope, receive, send_with_limits)


async def _authenticate(edge: Edge, request: Request, ip: str) -> Authenticated | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise errors.Unauthenticated(
                "the Authorization header must be `Bearer <api key>`", reason="AUTHORIZATION_MALFORMED"
            )
        return await edge.authenticator.api_key(credential.strip(), ip)
    token = request.cookies.get(cookies.SESSION)
    if token:
        return await edge.authenticator.session(token, ip)
    return None


def _check_csrf(request: Request, auth: Authenticated) -> None:
    if request.method in SAFE_METHODS:
        return
    echoed = request.headers.get(cookies.CSRF_HEADER, "")
    if not echoed or not hmac.compare_digest(echoed.encode(), auth.csrf_token.encode()):
        raise errors.PermissionDenied(
            "a browser request that changes state needs the session's anti-CSRF token in X-CSRF-Token",
            reason="CSRF_TOKEN_INVALID" if echoed else "CSRF_TOKEN_MISSING",
            metadata={"header": "X-CSRF-Token"},
        )


def _buckets(edge: Edge, auth: Authenticated | None, ip: str) -> list[Bucket]:
    buckets = [Bucket(f"ip:{ip}", edge.ip_limit)]
    if auth is not None:
        principal = auth.principal
        limit = plan_limit(edge.plan_limits, principal.plan)
        buckets.insert(0, Bucket(f"{principal.kind}:{principal.credential_id}", limit))
    return buckets


def _add_headers(headers: list[tuple[bytes, bytes]], verdict: Verdict | None) -> list[tuple[bytes, bytes]]:
    if verdict is not None:
        present = {name.lower() for name, _ in headers}
        headers.extend(
            (name.lower().encode(), value.encode())
            for name, value in verdict.headers().items()
            if name.lower().encode() not in present
        )
    return headers


def authenticated(request: Request) -> Authenticated | None:
    """The credential the middleware resolved for this request, if any."""
    found: Authenticated | None = request.scope.get("state", {}).get(AUTH_STATE_KEY)
    return found
