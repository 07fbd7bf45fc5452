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
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors as http_errors
from gateway.auth import cookies
from gateway.auth.authenticator import API_KEY, SESSION, Authenticated
from gateway.auth.edge import Edge
from gateway.middleware import add_response_headers
from gateway.ratelimit import Bucket, Verdict, plan_limit
from servicekit import context, errors

GUARDED_PREFIXES = ("/api/", "/auth/")
# Sign-in routes must work with a stale session cookie, so they never look at credentials.
ANONYMOUS_PREFIXES = ("/auth/google/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUTH_STATE_KEY = "auth"
IP_BUCKET = "ip:"


def client_ip(scope: Scope) -> str:
    """The peer address (uvicorn has already applied X-Forwarded-For from trusted proxies)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class EdgeAuth:
    """Pure ASGI middleware, so the context it binds is the one the endpoint runs in.

    It runs on every guarded request, so it reads the raw ASGI headers rather than building a Request, and
    a credential the cache holds, charged against a live lease of its buckets, waits for nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        edge: Edge = scope["app"].state.edge
        ip = client_ip(scope)
        auth: Authenticated | None = None
        verdict: Verdict | None = None
        try:
            if not path.startswith(ANONYMOUS_PREFIXES):
                credential = _credential(scope)
                if credential is not None:
                    auth = edge.authenticator.known(*credential)
                    if auth is None:
                        auth = await _resolve(edge, credential, ip)
            verdict = edge.limiter.spend(_bucket_keys(auth, ip))
            if verdict is None:
                verdict = await edge.limiter.charge(_buckets(edge, auth, ip))
                if verdict is not None and not verdict.allowed:
                    raise errors.ResourceExhausted(
                        f"rate limit of {verdict.limit} requests exceeded; "
                        f"retry in {verdict.retry_after_seconds} s",
                        reason="RATE_LIMITED",
                        retry_after=verdict.retry_after_seconds,
                    )
            if auth is not None and auth.principal.kind == "session":
                _check_csrf(scope, auth)
        except errors.DomainError as exc:
            await _refuse(edge, exc, verdict, scope, receive, send)
            return
        scope.setdefault("state", {})[AUTH_STATE_KEY] = auth
        if verdict is not None:
            send = add_response_headers(scope, verdict.raw_headers(), send)
        if auth is None:
            await self.app(scope, receive, send)
            return
        with context.bound(context.request_id(), auth.principal):
            await self.app(scope, receive, send)


def _credential(scope: Scope) -> tuple[str, str] | None:
    """The credential presented, with its kind: a bearer API key first, else the session cookie."""
    header = _header(scope, b"authorization")
    if header is not None:
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise errors.Unauthenticated(
                "the Authorization header must be `Bearer <api key>`", reason="AUTHORIZATION_MALFORMED"
            )
        return API_KEY, key
    if _header(scope, b"cookie") is None:
        return None
    token = Request(scope).cookies.get(cookies.SESSION)
    return (SESSION, token) if token else None


async def _resolve(edge: Edge, credential: tuple[str, str], ip: str) -> Authenticated:
    kind, secret = credential
    if kind == API_KEY:
        return await edge.authenticator.api_key(secret, ip)
    return await edge.authenticator.session(secret, ip)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header, as Starlette's `request.headers.get` would read it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _check_csrf(scope: Scope, auth: Authenticated) -> None:
    if scope["method"] in SAFE_METHODS:
        return
    echoed = _header(scope, cookies.CSRF_HEADER.encode()) or ""
    if not echoed or not hmac.compare_digest(echoed.encode(), auth.csrf_token.encode()):
        raise errors.PermissionDenied(
            "a browser request that changes state needs the session's anti-CSRF token in X-CSRF-Token",
            reason="CSRF_TOKEN_INVALID" if echoed else "CSRF_TOKEN_MISSING",
            metadata={"header": "X-CSRF-Token"},
        )


async def _refuse(
    edge: Edge, exc: errors.DomainError, verdict: Verdict | None, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answers a refused request with the error and the limit headers of what it was charged."""
    response = http_errors.domain_response(exc)
    _add_headers(response.raw_headers, verdict)
    if exc.code == "UNAUTHENTICATED" and cookies.SESSION in Request(scope).cookies:
        cookies.clear_session(response, edge.settings)
    await response(scope, receive, send)


def _buckets(edge: Edge, auth: Authenticated | None, ip: str) -> tuple[Bucket, ...]:
    """The credential's bucket (by plan) and the client IP's, in the order of `_bucket_keys`."""
    ip_bucket = Bucket(IP_BUCKET + ip, edge.ip_limit)
    if auth is None:
        return (ip_bucket,)
    return Bucket(auth.bucket_key, plan_limit(edge.plan_limits, auth.principal.plan)), ip_bucket


def _bucket_keys(auth: Authenticated | None, ip: str) -> tuple[str, ...]:
    return (IP_BUCKET + ip,) if auth is None else (auth.bucket_key, IP_BUCKET + ip)


def _add_headers(headers: list[tuple[bytes, bytes]], verdict: Verdict | None) -> list[tuple[bytes, bytes]]:
    if verdict is not None:
        present = {name.lower() for name, _ in headers}
        headers.extend((name, value) for name, value in verdict.raw_headers() if name not in present)
    return headers


def authenticated(request: Request) -> Authenticated | None:
    """The credential the middleware resolved for this request, if any."""
    found: Authenticated | None = request.scope.get("state", {}).get(AUTH_STATE_KEY)
    return found
