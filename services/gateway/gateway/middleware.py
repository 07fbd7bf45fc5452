"""ASGI middleware of the edge: request id, call context, one access log line and metrics per request.

Inner middleware that add response headers of their own (the edge's RateLimit-* fields) hand them to
`add_response_headers`, so every response passes through one wrapper of `send` rather than one per layer.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit import context
from servicekit.logging import get_logger
from servicekit.metrics import Metrics

log = get_logger("gateway.http")
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
# The scope key under which RequestContext collects the headers inner layers add to the response.
RESPONSE_HEADERS_KEY = "gateway.response_headers"
Headers = list[tuple[bytes, bytes]]


def add_response_headers(scope: Scope, headers: Headers, send: Send) -> Send:
    """Adds `headers` to the response unless it names them itself; returns the `send` to call on with.

    Under RequestContext that is `send` unchanged (it adds them); without it, a wrapper that does.
    """
    collected: Headers | None = scope.get(RESPONSE_HEADERS_KEY)
    if collected is not None:
        collected.extend(headers)
        return send

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _merged(list(message.get("headers", [])), headers)
        await send(message)

    return send_with_headers


class _AccessLog:
    """The access logger, bound once per logging configuration.

    A module-level structlog logger assembles a new bound logger on every call (loggers are not cached, so
    tests can reconfigure logging), a cost the one line per request would pay even when its level is off.
    """

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._logger: Any = None

    def get(self) -> Any:
        config = structlog.get_config()
        if config != self._config:
            self._config, self._logger = config, log.bind()
        return self._logger


class RequestContext:
    """Binds a request id (the client's `X-Request-ID` when sane) and echoes it on the response."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = _AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = context.clean_request_id(_request_id_header(scope))
        started = time.perf_counter()
        code = 500
        added: Headers = []
        scope[RESPONSE_HEADERS_KEY] = added

        async def send_with_id(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                headers = list(message.get("headers", []))
                if added:
                    headers = _merged(headers, added)
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        with context.bound(rid, None):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._finish(scope, code, time.perf_counter() - started)

    def _finish(self, scope: Scope, code: int, elapsed: float) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(f"{scope['method']} {path}", str(code), elapsed)
        if scope["path"] not in QUIET_PATHS:
            self.access_log.get().info(
                "http.finished",
                method=scope["method"],
                path=path,
                status=code,
                duration_ms=round(elapsed * 1000, 2),
            )


def _request_id_header(scope: Scope) -> str:
    found = b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            found = value  # the last one, should a client send several
    return found.decode("latin-1")


def _merged(headers: Headers, added: Headers) -> Headers:
    """`headers` plus those of `added` whose names the response does not carry already."""
    present = {name.lower() for name, _ in headers}
    for pair in added:
        if pair[0] not in present:
            headers.append(pair)
    return headers
